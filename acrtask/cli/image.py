"""`acrtask image digest` (which digest a tag points to now, as the watch loop sees it) and `image import`
(a copy by digest, as az acr import)."""

from __future__ import annotations

from typing import Annotated

import typer

from acrtask.cli.options import GLOBAL_HELP, emit

image_app = typer.Typer(help="Look at images in registries.", epilog=GLOBAL_HELP, no_args_is_help=True)


@image_app.command(epilog="Examples:\n\n  acrtask image digest alpine:3.20\n\n"
                   "  acrtask image digest localhost:5000/baseimages/node:15-alpine --platform linux/arm64 "
                   "--query platformDigest -o tsv")
def digest(
    image: Annotated[str, typer.Argument(help="The image reference, e.g. alpine:3.20 or localhost:5000/app:v1.")],
    platform: Annotated[str | None, typer.Option(
        "--platform", help="Also the digest of this platform's manifest: os/arch or os/arch/variant.")] = None,
) -> None:
    """Print the digest a tag points to (and a platform's manifest digest when asked)."""
    from acrtask import wiring
    from acrtask.platform import Platform
    from acrtask.reference import ImageRef

    ref = ImageRef.parse(image)
    wanted = Platform.parse(platform) if platform else None
    resolved = wiring.program().resolve_image(ref, wanted)
    result: dict[str, str | None] = {"image": str(ref), "digest": resolved.digest,
                                     "mediaType": resolved.media_type}
    if wanted is not None:
        result["platform"] = str(wanted)
        result["platformDigest"] = resolved.platform_digest
    emit(result)


@image_app.command("import", epilog="Examples:\n\n"
                   "  acrtask image import --source docker.io/library/node:20-alpine "
                   "-t localhost:5000/base/node:20-alpine\n\n"
                   "  acrtask image import --source ghcr.io/org/tool:1.2 -r localhost:5000 "
                   "-t tools/tool:1 --force\n\n"
                   "  printf %s \"$TOKEN\" | acrtask image import --source private.example.com/team/base:1 "
                   "-t localhost:5000/base:1 -u bot --password-stdin")
def import_image(
    source: Annotated[str, typer.Option(
        "--source", help="The image to copy: a tag or a digest, in any registry (node:20 is Docker Hub's).")],
    image: Annotated[str | None, typer.Option(
        "--image", "-t", help="The tag to copy to, e.g. localhost:5000/base/node:20. Default: the source's "
        "repository and tag under -r.")] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", "-r", envvar="ACRTASK_REGISTRY", help="Login server under which a short -t is placed.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the target tag if it points elsewhere.")] = False,
    username: Annotated[str | None, typer.Option(
        "--username", "-u", envvar="ACRTASK_SOURCE_USERNAME",
        help="User for the source registry (default: the Docker config's login).")] = None,
    password: Annotated[str | None, typer.Option(
        "--password", "-p", envvar="ACRTASK_SOURCE_PASSWORD",
        help="Password or token for the source registry. Keep it out of argv (ps, shell history): set "
        "ACRTASK_SOURCE_PASSWORD or use --password-stdin.")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the source registry's password from stdin.")] = False,
) -> None:
    """Copy an image into a registry by digest (as az acr import): every platform, nothing rebuilt."""
    import logging
    import sys

    from acrtask import wiring
    from acrtask.errors import ValidationError
    from acrtask.imports import source_of, target_of

    ref = source_of(source)
    target = target_of(ref, image, registry)
    if password_stdin:
        if password is not None:
            raise ValidationError("--password (or ACRTASK_SOURCE_PASSWORD) and --password-stdin cannot be used "
                                  "together.", "Give the password one way.")
        password = sys.stdin.readline().rstrip("\r\n")
    login = None
    if username is not None or password is not None:
        if not username or not password:
            raise ValidationError("-u/--username and a password go together.",
                                  "Give both (the password with -p, ACRTASK_SOURCE_PASSWORD or --password-stdin), "
                                  "or neither to use the Docker config's login.")
        login = (username, password)
    say = logging.getLogger("acrtask.import").info  # progress lines: shown with --verbose
    result = wiring.program().import_image(ref, target, force=force, login=login,
                                           log_line=lambda line: say("%s", line))
    emit({"source": str(result.source), "target": str(result.target), "digest": result.digest,
          "mediaType": result.media_type, "platforms": list(result.platforms), "manifests": result.manifests,
          "blobs": {"copied": result.copied, "mounted": result.mounted, "alreadyPresent": result.present},
          "bytesCopied": result.bytes_copied, "unchanged": result.unchanged})
