"""The ``postgate`` command line: ``main`` parses and dispatches; each command imports what
it needs when it runs, so that ``postgate --help`` and a mistake answer at once."""
