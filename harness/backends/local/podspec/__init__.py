"""The Deployment manifest read as the local backend runs it: pod template, env, strategy,
entrypoint."""
