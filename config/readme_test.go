package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlKeys returns the YAML keys of t, nested ones dotted ("smtp.host"):
// a struct field is walked into unless its type reads itself from YAML
// (Duration, Size, Space, …); lists and maps are one key.
func yamlKeys(t reflect.Type, prefix string) []string {
	unmarshaler := reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		key := prefix + tag
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(unmarshaler) {
			out = append(out, yamlKeys(f.Type, key+".")...)
			continue
		}
		out = append(out, key)
	}
	return out
}

// readmeTable returns the names that the rows of README's configuration
// table give in their YAML key column and in their environment column.
// A cell may abbreviate the names after its first one: "`smtp.host`,
// `.port`" and "`PIGP_SMTP_HOST`, `_PORT`".
func readmeTable(t *testing.T) (keys, envs map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "| YAML key | environment |")
	if start < 0 {
		t.Fatal("README.md has no configuration table")
	}
	keys, envs = map[string]bool{}, map[string]bool{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(text[start:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		var full string
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			name := m[1]
			if strings.HasPrefix(name, ".") && full != "" {
				name = full[:strings.LastIndex(full, ".")] + name
			} else {
				full = name
			}
			keys[name] = true
		}
		full = ""
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			name := m[1]
			if strings.HasPrefix(name, "_") && full != "" {
				name = full[:strings.LastIndex(full, "_")] + name
			} else {
				full = name
			}
			envs[name] = true
		}
	}
	return keys, envs
}

// TestReadmeDocumentsEverySetting: every YAML key of Config (nested keys
// included) and every environment variable Load reads has a row in
// README's configuration table.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	keys, envs := readmeTable(t)
	all := yamlKeys(reflect.TypeOf(Config{}), "")
	if len(all) < 50 {
		t.Fatalf("only %d YAML keys found in Config: the walk is broken", len(all))
	}
	for _, k := range all {
		if !keys[k] {
			t.Errorf("README.md's configuration table has no row for %s", k)
		}
	}
	for _, e := range EnvNames() {
		if !envs[e] {
			t.Errorf("README.md's configuration table does not name %s", e)
		}
	}
}
