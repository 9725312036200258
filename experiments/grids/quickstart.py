"""Quickstart: EXPO, its no-edits and no-OTF-backup ablations, and the imitation-only base policy
on the embedded Lift task, offline-to-online, at a scale that fits a 2-core CPU."""
GRID = {
    "description": "EXPO vs ablations vs imitation-only on embedded Lift (mini scale)",
    "tasks": ["lift"],
    "methods": ["expo", "expo_no_edit", "expo_no_otf_backup", "bc"],
    "seeds": 2,
    "setting": "offline_to_online",
    "scale": "mini",
    "overrides": {},
}
