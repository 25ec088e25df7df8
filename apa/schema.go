package apa

import (
	"embed"
	"io/fs"
)

// File names of the XSDs in Schemas.
const (
	SchemaRequest  = "DemandeAPA.xsd"
	SchemaResponse = "ReponseAPA.xsd"
	SchemaReport   = "CompteRenduAPA.xsd"
)

//go:embed xsd/*.xsd
var schemaFiles embed.FS

// Schemas returns the three XSDs of the contract (SchemaRequest,
// SchemaResponse, SchemaReport) as a read-only file system, for the server
// to publish over SFTP and HTTPS.
func Schemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "xsd")
	if err != nil {
		panic("apa: embedded schemas: " + err.Error()) // cannot happen: "xsd" is a valid path
	}
	return sub
}
