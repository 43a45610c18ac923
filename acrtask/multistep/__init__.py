"""Multi-step tasks: ACR's `acr-task.yaml` (build, push and cmd steps), run on this host's builder.

Pure parts: `templates` ({{.Run.ID}}, {{.Values.x}}, $Alias), `spec` (the YAML into frozen values,
with line numbers), `graph` (the `when` ordering), `document` (text to a checked task file).
Parts with I/O: `engine` (push and run containers with buildah, docker or podman), `executor` (steps
in threads, timeouts, retries, cancel) and `run` (one run of a multi-step task, from the Runner).
"""
