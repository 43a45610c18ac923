"""Builders: turn a BuildSpec (builders/base.py) into a built (and pushed) image with buildah, docker (buildx)
or podman. Which one a name means: `acrtask.builders.local.select`.

The package itself imports nothing, so that a command reaching one small module (`builders.authfile` for
registry logins) does not load every builder.
"""
