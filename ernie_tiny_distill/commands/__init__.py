"""The command-line programs (console scripts ernie-train, ernie-export, ...; tools/*.py call the same main())."""
