package web

// Exported for the black-box tests.
var (
	LongDate  = longDate
	ShortDate = shortDate
	Markdown  = markdown
)
