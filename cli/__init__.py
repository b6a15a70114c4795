"""The `codec` command line: one file per command, one error boundary in app.main()."""
