module github.com/escalefs/escalefs

go 1.26.8

require (
	github.com/jlaffaye/ftp v0.2.4 // indirect
	github.com/studio-b12/gowebdav v0.13.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	google.golang.org/api v0.311.0 // indirect
)
