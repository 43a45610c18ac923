"""Notifications out of watch: az's per-task update-trigger endpoint and global run-event targets."""
