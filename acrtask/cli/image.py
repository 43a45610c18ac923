"""`acrtask image digest`: which digest a tag points to now, as the watch loop sees it."""

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
    from acrtask.platform import Platform
    from acrtask.reference import ImageRef
    from acrtask.registry import resolve_sync

    ref = ImageRef.parse(image)
    wanted = Platform.parse(platform) if platform else None
    resolved = resolve_sync(ref, wanted)
    result: dict[str, str | None] = {"image": str(ref), "digest": resolved.digest,
                                     "mediaType": resolved.media_type}
    if wanted is not None:
        result["platform"] = str(wanted)
        result["platformDigest"] = resolved.platform_digest
    emit(result)
