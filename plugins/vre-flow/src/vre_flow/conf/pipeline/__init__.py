"""Pipeline presets of vre-flow: flow (every flow type, SIFT) and flow_demo (DIS and SIFT, used by `vre demo`)."""
