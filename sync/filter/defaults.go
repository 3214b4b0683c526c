package filter

// DefaultIgnores lists what a filter ignores unless Options.NoDefaults is
// set: temporary, lock and housekeeping files that editors, office suites,
// browsers, file managers and operating systems create next to the user's
// files, and that must never travel to other machines (at best they are
// noise, at worst they make a remote editor believe a document is open).
//
// An entry without a trailing slash is a glob on file base names; an entry
// ending with a slash is a glob on directory names (the directory and its
// subtree are ignored). Both match at any depth and ignore ASCII case. The
// entries are valid Exclude and ExcludeDirs patterns, so that a user who
// wants to keep a few of them can set NoDefaults and list the rest. Compile
// reads the variable when it is called.
var DefaultIgnores = []string{
	// vim: swap files of an edited file .name.swp (then .swo, .swn when
	// the previous one exists), and .swx, written to test that a swap file
	// can be created.
	".*.swp", ".*.swo", ".*.swn", ".*.swx",
	// vim: file created and deleted at once to check that new files can be
	// made in a directory before saving ('backupcopy' auto).
	"4913",
	// Kate and KWrite (KDE): swap file of an edited document.
	".*.kate-swp",
	// Backup copies: Emacs, vim 'backup', nano, gedit and others (name~).
	"*~",
	// Emacs: auto-save files (#name#) and lock symlinks (.#name).
	"#*#", ".#*",
	// LibreOffice and OpenOffice: lock file of an open document.
	".~lock.*#",
	// Microsoft Office: owner file of an open document (~$name.docx), and
	// temporary files written while saving (~WRL0001.tmp, ~DF1234.tmp).
	"~$*", "~*.tmp",
	// GNOME (GIO): temporary file of an atomic replace (gedit and others).
	".goutputstream-*",
	// Downloads and transfers in progress: Firefox (.part), Chrome and
	// Edge (.crdownload), WinSCP (.filepart), rclone and Internet Explorer
	// (.partial).
	"*.part", "*.crdownload", "*.filepart", "*.partial",
	// Syncthing: temporary files of transfers in progress.
	"~syncthing~*.tmp", ".syncthing.*.tmp",
	// NFS: "silly rename" of a file deleted while still open (.nfsXXXX).
	".nfs*",
	// FUSE (libfuse): hidden name of a file deleted while still open.
	".fuse_hidden*",
	// macOS Finder: folder view settings, and AppleDouble files (._name)
	// holding the extended attributes of name on filesystems without them.
	".DS_Store", "._*",
	// Windows Explorer: thumbnail caches and folder view settings.
	"Thumbs.db", "ehthumbs.db", "desktop.ini",

	// macOS volumes: Spotlight index, file system event log, trash,
	// temporary items and document versions.
	".Spotlight-V100/", ".fseventsd/", ".Trashes/", ".TemporaryItems/",
	".DocumentRevisions-V100/",
	// Windows volumes: recycle bin ($Recycle.Bin on recent versions) and
	// restore points and indexes.
	"$RECYCLE.BIN/", "System Volume Information/",
	// freedesktop.org trash directories of a volume (.Trash-1000 and
	// .Trash/1000) and the macOS user trash (~/.Trash).
	".Trash-*/", ".Trash/",
}
