"""Editing runs over many dialogues and their reports: `evaluate` (the paper's Table 4 per mode and per turn),
`prompt_script` and `run_script` (scripted multi-turn sessions), `report` (one HTML file) with `report_plots`
and `contact_sheet`."""
