"""The app's tabs beyond Generate and Compare, and the helpers every tab shares: layout and wiring only (the
logic sits in genimg). ``app.py`` builds the page from them; ``python app.py`` stays the entry point."""
