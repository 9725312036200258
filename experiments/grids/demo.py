"""The embedded default behind `make demo`: EXPO and the imitation-only base policy on Lift,
offline-to-online, 2 seeds, mini scale, 7.5k online steps, so that it finishes within 15 minutes
on a 2-core CPU including setup. The same runs, longer and with the ablations, are `quickstart`."""
GRID = {
    "description": "EXPO vs imitation-only on embedded Lift (mini scale, 7.5k online steps)",
    "tasks": ["lift"],
    "methods": ["expo", "bc"],
    "seeds": 2,
    "setting": "offline_to_online",
    "scale": "mini",
    "overrides": {"steps": 7_500},
}
