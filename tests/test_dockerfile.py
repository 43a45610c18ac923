"""scan(): base images of a Dockerfile, by table (one row per form) and by error."""

from __future__ import annotations

import pytest

from acrtask.dockerfile import BaseImage, DependencyType, ScanResult, scan
from acrtask.errors import ValidationError
from acrtask.platform import Platform
from acrtask.reference import ImageRef

D256 = "sha256:" + "0123456789abcdef" * 4


def lines(*text: str) -> str:
    return "\n".join(text) + "\n"


def hub(name: str) -> str:
    return f"docker.io/library/{name}"


def summary(result: ScanResult) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """(runtime, build-time, stages) with images as fully qualified strings."""
    runtime = str(result.runtime.image) if result.runtime else None
    return runtime, tuple(str(base.image) for base in result.build_time), result.stages


# (Dockerfile, build args, target, runtime, build-time images, stage names)
CASES = {
    "simple": (lines("FROM alpine:3.19"), None, None, hub("alpine:3.19"), (), ()),
    "default tag": (lines("FROM alpine"), None, None, hub("alpine:latest"), (), ()),
    "other registry": (lines("FROM myreg.azurecr.io/team/base:1.0"), None, None,
                       "myreg.azurecr.io/team/base:1.0", (), ()),
    "arg default": (lines("ARG TAG=3.19", "FROM alpine:$TAG"), None, None, hub("alpine:3.19"), (), ()),
    "arg braces": (lines("ARG TAG=3.19", "FROM alpine:${TAG}"), None, None, hub("alpine:3.19"), (), ()),
    "arg overridden": (lines("ARG TAG=3.19", "FROM alpine:$TAG"), {"TAG": "3.20"}, None,
                       hub("alpine:3.20"), (), ()),
    "arg without default given": (lines("ARG TAG", "FROM alpine:${TAG}"), {"TAG": "3.20"}, None,
                                  hub("alpine:3.20"), (), ()),
    "arg default uses arg": (lines("ARG V=3.19", "ARG IMAGE=alpine:$V", "FROM $IMAGE"), {"V": "3.18"}, None,
                             hub("alpine:3.18"), (), ()),
    "several args on one line": (lines("ARG NAME=alpine TAG=3.19", "FROM ${NAME}:${TAG}"), None, None,
                                 hub("alpine:3.19"), (), ()),
    "empty arg still valid": (lines("ARG SUFFIX", "FROM alpine:3.19$SUFFIX"), None, None,
                              hub("alpine:3.19"), (), ()),
    "build arg for undeclared name unused": (lines("FROM alpine:3.19$SUFFIX"), {"SUFFIX": "-x"}, None,
                                             hub("alpine:3.19"), (), ()),
    "default form unset": (lines("ARG TAG", "FROM alpine:${TAG:-3.18}"), None, None,
                           hub("alpine:3.18"), (), ()),
    "default form empty": (lines("ARG TAG=", "FROM alpine:${TAG:-3.18}"), None, None,
                           hub("alpine:3.18"), (), ()),
    "default form set": (lines("ARG TAG", "FROM alpine:${TAG:-3.18}"), {"TAG": "3.20"}, None,
                         hub("alpine:3.20"), (), ()),
    "default form nested": (lines("ARG A", "ARG B=3.17", "FROM alpine:${A:-$B}"), None, None,
                            hub("alpine:3.17"), (), ()),
    "dash form unset": (lines("ARG TAG", "FROM alpine:${TAG-3.18}"), None, None, hub("alpine:3.18"), (), ()),
    "alt form unset": (lines("ARG V", "FROM alpine:3.19${V:+-$V}"), None, None, hub("alpine:3.19"), (), ()),
    "alt form set": (lines("ARG V", "FROM python:3.12${V:+-$V}"), {"V": "slim"}, None,
                     hub("python:3.12-slim"), (), ()),
    "suffix removed": (lines("ARG T=3.19.1", "FROM alpine:${T%.*}"), None, None, hub("alpine:3.19"), (), ()),
    "longest suffix removed": (lines("ARG T=3.19.1", "FROM alpine:${T%%.*}"), None, None, hub("alpine:3"), (), ()),
    "prefix removed": (lines("ARG V=v3.19", "FROM alpine:${V#v}"), None, None, hub("alpine:3.19"), (), ()),
    "longest prefix removed": (lines("ARG P=a/b/node", "FROM ${P##*/}:20"), None, None, hub("node:20"), (), ()),
    "replaced": (lines("ARG T=3_19", "FROM alpine:${T/_/.}"), None, None, hub("alpine:3.19"), (), ()),
    "all replaced": (lines("ARG T=1_2_3", "FROM node:${T//_/.}"), None, None, hub("node:1.2.3"), (), ()),
    "positional default": (lines("FROM alpine:${1:-3.19}"), None, None, hub("alpine:3.19"), (), ()),
    "special parameters are empty": (lines("FROM alpine:3.19$@$#$$$0$*"), None, None, hub("alpine:3.19"), (), ()),
    "required form set": (lines("ARG TAG", "FROM alpine:${TAG:?give-TAG}"), {"TAG": "3.19"}, None,
                          hub("alpine:3.19"), (), ()),
    "multi-stage with aliases": (
        lines("FROM golang:1.22 AS build", "RUN go build", "FROM alpine:3.19 AS final",
              "COPY --from=build /app /app"),
        None, None, hub("alpine:3.19"), (hub("golang:1.22"),), ("build", "final")),
    "unnamed stages": (lines("FROM golang:1.22", "FROM node:20", "FROM alpine:3.19"), None, None,
                       hub("alpine:3.19"), (hub("golang:1.22"), hub("node:20")), ()),
    "stage on stage": (lines("FROM node:20 AS base", "FROM base AS deps", "FROM deps"), None, None,
                       hub("node:20"), (), ("base", "deps")),
    "stage on stage with other runtime": (
        lines("FROM golang:1.22 AS build", "FROM build AS test", "FROM alpine:3.19"), None, None,
        hub("alpine:3.19"), (hub("golang:1.22"),), ("build", "test")),
    "stage reference case-insensitive": (lines("FROM node:20 AS Base", "FROM BASE"), None, None,
                                         hub("node:20"), (), ("base",)),
    "stage reference through arg": (lines("ARG FROM_STAGE=base", "FROM node:20 AS base", "FROM $FROM_STAGE"),
                                    None, None, hub("node:20"), (), ("base",)),
    "target stops early": (
        lines("FROM golang:1.22 AS build", "FROM alpine:3.19 AS final", "COPY --from=busybox /bin /bin"),
        None, "build", hub("golang:1.22"), (), ("build",)),
    "target in the middle": (
        lines("FROM golang:1.22 AS build", "FROM build AS test", "COPY --from=busybox /b /b",
              "FROM alpine:3.19", "COPY --from=nginx / /"),
        None, "test", hub("golang:1.22"), (hub("busybox:latest"),), ("build", "test")),
    "target case-insensitive": (lines("FROM golang:1.22 AS build", "FROM alpine"), None, "BUILD",
                                hub("golang:1.22"), (), ("build",)),
    "target ignores broken later stages": (
        lines("ARG MISSING", "FROM golang:1.22 AS build", "FROM $MISSING", "COPY --from=Bad / /"),
        None, "build", hub("golang:1.22"), (), ("build",)),
    "scratch final stage": (lines("FROM golang:1.22 AS build", "FROM scratch", "COPY --from=build /a /a"),
                            None, None, None, (hub("golang:1.22"),), ("build",)),
    "built on scratch": (lines("FROM scratch AS base", "FROM base"), None, None, None, (), ("base",)),
    "scratch build stage": (lines("FROM scratch AS empty", "FROM alpine"), None, None,
                            hub("alpine:latest"), (), ("empty",)),
    "copy from image": (lines("FROM alpine", "COPY --from=nginx:1.25 /etc/nginx /etc/nginx"), None, None,
                        hub("alpine:latest"), (hub("nginx:1.25"),), ()),
    "copy from registry image": (lines("FROM alpine", "COPY --from=ghcr.io/org/tools:2 /t /t"), None, None,
                                 hub("alpine:latest"), ("ghcr.io/org/tools:2",), ()),
    "copy from stage": (lines("FROM golang AS Build", "FROM alpine", "COPY --from=BUILD /a /a"), None, None,
                        hub("alpine:latest"), (hub("golang:latest"),), ("build",)),
    "copy from index": (lines("FROM golang", "FROM alpine", "COPY --from=0 /a /a"), None, None,
                        hub("alpine:latest"), (hub("golang:latest"),), ()),
    "copy from with other flags": (
        lines("FROM alpine", "COPY --chown=1:1 --link --from=busybox:1.36 /bin/sh /sh"), None, None,
        hub("alpine:latest"), (hub("busybox:1.36"),), ()),
    "copy from quoted": (lines("FROM alpine", 'COPY --from="busybox:1.36" /a /a'), None, None,
                         hub("alpine:latest"), (hub("busybox:1.36"),), ()),
    "copy from stage arg": (lines("FROM alpine", "ARG TOOLS=busybox:1.36", "COPY --from=$TOOLS /a /a"),
                            None, None, hub("alpine:latest"), (hub("busybox:1.36"),), ()),
    "copy from stage arg overridden": (
        lines("FROM alpine", "ARG TOOLS=busybox:1.36", "COPY --from=${TOOLS} /a /a"),
        {"TOOLS": "busybox:1.37"}, None, hub("alpine:latest"), (hub("busybox:1.37"),), ()),
    "copy from redeclared global arg": (
        lines("ARG TOOLS=busybox:1.36", "FROM alpine", "ARG TOOLS", "COPY --from=$TOOLS /a /a"),
        None, None, hub("alpine:latest"), (hub("busybox:1.36"),), ()),
    "copy source named from": (lines("FROM alpine", "COPY from=x /a"), None, None, hub("alpine:latest"), (), ()),
    "add is not copy": (lines("FROM alpine", "ADD --chown=1 a /a"), None, None, hub("alpine:latest"), (), ()),
    "copy from scratch": (lines("FROM alpine", "COPY --from=scratch / /"), None, None,
                          hub("alpine:latest"), (), ()),
    "run mount from image": (
        lines("FROM alpine", "RUN --mount=type=bind,from=busybox:1.36,source=/bin,target=/b ls /b"),
        None, None, hub("alpine:latest"), (hub("busybox:1.36"),), ()),
    "run mount cache from image": (
        lines("FROM alpine", "RUN --mount=type=cache,target=/c,from=ghcr.io/org/cache:1 true"),
        None, None, hub("alpine:latest"), ("ghcr.io/org/cache:1",), ()),
    "run mount from stage": (
        lines("FROM golang:1.22 AS build", "FROM alpine", "RUN --mount=type=bind,from=build,target=/s cp /s/a /"),
        None, None, hub("alpine:latest"), (hub("golang:1.22"),), ("build",)),
    "run several mounts": (
        lines("FROM alpine", "RUN --mount=type=secret,id=tok --network=none \\",
              "    --mount=type=bind,from=busybox,target=/b \\", "    ls /b"),
        None, None, hub("alpine:latest"), (hub("busybox:latest"),), ()),
    "run mount quoted": (lines("FROM alpine", 'RUN --mount="type=bind,from=busybox,target=/b" ls'), None, None,
                         hub("alpine:latest"), (hub("busybox:latest"),), ()),
    "quoted word is no flag": (lines("FROM alpine", 'RUN "--mount=type=bind,from=busybox" ls'), None, None,
                               hub("alpine:latest"), (), ()),
    "run without mount": (lines("FROM alpine", "RUN echo --mount=type=bind,from=busybox"), None, None,
                          hub("alpine:latest"), (), ()),
    "onbuild ignored": (lines("FROM alpine", "ONBUILD COPY --from=busybox / /"), None, None,
                        hub("alpine:latest"), (), ()),
    "bom": (lines("\ufeffFROM alpine:3.19"), None, None, hub("alpine:3.19"), (), ()),
    "bom before arg": (lines("\ufeffARG T=3.19", "FROM alpine:$T"), None, None, hub("alpine:3.19"), (), ()),
    "double quotes": (lines('FROM "alpine:3.19"'), None, None, hub("alpine:3.19"), (), ()),
    "single quotes": (lines("FROM 'alpine:3.19' AS 'base'"), None, None, hub("alpine:3.19"), (), ("base",)),
    "quoted arg default": (lines('ARG IMAGE="alpine:3.19"', 'FROM "${IMAGE}"'), None, None,
                           hub("alpine:3.19"), (), ()),
    "single-quoted arg default is literal": (lines("ARG T='3.19'", "FROM alpine:$T"), None, None,
                                             hub("alpine:3.19"), (), ()),
    "lowercase from and as": (lines("from golang:1.22 as build", "from alpine", "copy --from=build /a /a"),
                              None, None, hub("alpine:latest"), (hub("golang:1.22"),), ("build",)),
    "mixed case": (lines("From golang:1.22 As Build", "fRoM alpine"), None, None,
                   hub("alpine:latest"), (hub("golang:1.22"),), ("build",)),
    "duplicate build images": (
        lines("FROM golang:1.22 AS a", "FROM golang:1.22 AS b", "FROM docker.io/library/golang:1.22 AS c",
              "FROM alpine", "COPY --from=golang:1.22 / /"),
        None, None, hub("alpine:latest"), (hub("golang:1.22"),), ("a", "b", "c")),
    "runtime also used in a build stage": (
        lines("FROM alpine:3.19 AS base", "FROM golang AS build", "FROM alpine:3.19"), None, None,
        hub("alpine:3.19"), (hub("golang:latest"),), ("base", "build")),
    "runtime also copied from": (lines("FROM alpine", "COPY --from=alpine:latest / /"), None, None,
                                 hub("alpine:latest"), (), ()),
    "normalised duplicates": (lines("FROM golang AS a", "FROM index.docker.io/library/golang:latest AS b",
                                    "FROM alpine"),
                              None, None, hub("alpine:latest"), (hub("golang:latest"),), ("a", "b")),
    "digest pinned": (lines(f"FROM alpine@{D256}"), None, None, f"{hub('alpine')}@{D256}", (), ()),
    "tag and digest pinned": (lines(f"FROM golang:1.22@{D256} AS b", "FROM alpine:3.19"), None, None,
                              hub("alpine:3.19"), (f"{hub('golang:1.22')}@{D256}",), ("b",)),
    "comments and directives": (
        lines("# syntax=docker/dockerfile:1.7", "# escape=\\", "", "# a comment", "ARG T=3.19",
              "# FROM ignored:1", "FROM alpine:$T"),
        None, None, hub("alpine:3.19"), (), ()),
    "continuation lines": (lines("FROM \\", "  golang:1.22 \\", "  AS build", "FROM alpine"), None, None,
                           hub("alpine:latest"), (hub("golang:1.22"),), ("build",)),
    "escape directive backtick": (
        lines("# escape=`", "FROM mcr.microsoft.com/windows/servercore:ltsc2022 `", "  AS build",
              "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022", "COPY --from=build C:\\app C:\\app"),
        None, None, "mcr.microsoft.com/windows/nanoserver:ltsc2022",
        ("mcr.microsoft.com/windows/servercore:ltsc2022",), ("build",)),
    "crlf": ("ARG T=3.19\r\nFROM golang AS build\r\nFROM alpine:$T\r\n", None, None, hub("alpine:3.19"),
             (hub("golang:latest"),), ("build",)),
    "no trailing newline": ("FROM alpine:3.19", None, None, hub("alpine:3.19"), (), ()),
    "heredoc body is not parsed": (
        lines("FROM python:3.12", "RUN <<EOF python3", "from os import path", "arg", "EOF",
              "COPY <<-'END' /etc/x", "\tFROM nginx", "\tEND", "RUN echo $((1<<2))"),
        None, None, hub("python:3.12"), (), ()),
    "continuation right after FROM and COPY": (
        lines("FROM\\", "  golang:1.22 AS build", "from\\", " alpine:3.19", "COPY\\", "  --from=busybox /b /b",
              "RUN\\", " --mount=from=nginx,target=/n ls"),
        None, None, hub("alpine:3.19"), (hub("golang:1.22"), hub("busybox:latest"), hub("nginx:latest")), ("build",)),
    "unused stage may copy from a later one": (
        lines("FROM alpine AS unused", "COPY --from=final / /", "FROM busybox AS final"), None, None,
        hub("busybox:latest"), (hub("alpine:latest"),), ("unused", "final")),
    "stages after the target are not scanned": (
        lines("FROM alpine AS a", "FROM alpine AS b", "ARG", "COPY --from=$NOPE:: / /", "COPY --from=9 / /"), None, "a",
        hub("alpine:latest"), (), ("a",)),
    "stage after target may copy from a later one": (
        lines("FROM alpine AS a", "FROM alpine AS b", "COPY --from=c / /", "FROM busybox AS c"), None, "a",
        hub("alpine:latest"), (), ("a",)),
    "stage args do not reach FROM": (
        lines("ARG T=3.19", "FROM golang AS build", "ARG T=9.9", "FROM alpine:$T"), None, None,
        hub("alpine:3.19"), (hub("golang:latest"),), ("build",)),
}


@pytest.mark.parametrize(("text", "args", "target", "runtime", "build_time", "stages"),
                         list(CASES.values()), ids=list(CASES))
def test_scan(text: str, args: dict[str, str] | None, target: str | None, runtime: str | None,
              build_time: tuple[str, ...], stages: tuple[str, ...]) -> None:
    assert summary(scan(text, args, target)) == (runtime, build_time, stages)


# (Dockerfile, build args, [(image, platform)] of runtime then build-time)
PLATFORM_CASES = {
    "no platform": (lines("FROM alpine"), None, [(hub("alpine:latest"), None)]),
    "literal": (lines("FROM --platform=linux/arm64 alpine"), None, [(hub("alpine:latest"), "linux/arm64")]),
    "normalised": (lines("FROM --platform=Linux/AArch64 alpine"), None,
                   [(hub("alpine:latest"), "linux/arm64")]),
    "from arg": (lines("ARG P=linux/arm/v7", "FROM --platform=$P alpine"), None,
                 [(hub("alpine:latest"), "linux/arm/v7")]),
    "arg overridden": (lines("ARG P=linux/arm64", "FROM --platform=${P} alpine"), {"P": "linux/s390x"},
                       [(hub("alpine:latest"), "linux/s390x")]),
    "empty flag": (lines("FROM --platform= alpine"), None, [(hub("alpine:latest"), None)]),
    "architecture only": (lines("FROM --platform=amd64 alpine AS a", "FROM --platform=aarch64 alpine"), None,
                          [(hub("alpine:latest"), "linux/arm64"), (hub("alpine:latest"), "linux/amd64")]),
    "architecture only from arg": (lines("ARG ARCH=arm64", "FROM --platform=$ARCH alpine"), None,
                                   [(hub("alpine:latest"), "linux/arm64")]),
    "buildplatform": (lines("FROM --platform=$BUILDPLATFORM golang AS build", "FROM alpine"), None,
                      [(hub("alpine:latest"), None), (hub("golang:latest"), None)]),
    "buildplatform braces": (lines("FROM --platform=${BUILDPLATFORM} golang"), None,
                             [(hub("golang:latest"), None)]),
    "targetos/targetarch": (lines("FROM --platform=$TARGETOS/$TARGETARCH golang"), None,
                            [(hub("golang:latest"), None)]),
    "builder arg given": (lines("FROM --platform=$TARGETPLATFORM golang"), {"TARGETPLATFORM": "linux/arm64"},
                          [(hub("golang:latest"), "linux/arm64")]),
    "builder arg with global default": (lines("ARG TARGETARCH=arm64", "FROM --platform=linux/$TARGETARCH go"),
                                        None, [(hub("go:latest"), "linux/arm64")]),
    "quoted": (lines('FROM --platform="linux/amd64" alpine'), None, [(hub("alpine:latest"), "linux/amd64")]),
    "same image two platforms": (
        lines("FROM --platform=linux/amd64 alpine AS a", "FROM --platform=linux/arm64 alpine"), None,
        [(hub("alpine:latest"), "linux/arm64"), (hub("alpine:latest"), "linux/amd64")]),
    "stage reference keeps origin platform": (
        lines("FROM --platform=linux/arm64 alpine AS a", "FROM --platform=linux/amd64 a"), None,
        [(hub("alpine:latest"), "linux/arm64")]),
    "copy from has no platform": (lines("FROM --platform=linux/arm64 alpine", "COPY --from=busybox / /"), None,
                                  [(hub("alpine:latest"), "linux/arm64"), (hub("busybox:latest"), None)]),
}


@pytest.mark.parametrize(("text", "args", "expected"), list(PLATFORM_CASES.values()), ids=list(PLATFORM_CASES))
def test_platform(text: str, args: dict[str, str] | None, expected: list[tuple[str, str | None]]) -> None:
    result = scan(text, args)
    bases = ([result.runtime] if result.runtime else []) + list(result.build_time)
    assert [(str(base.image), base.platform) for base in bases] == [
        (image, Platform.parse(platform) if platform else None) for image, platform in expected]


def test_base_image_fields() -> None:
    result = scan(lines(
        "ARG GO=1.22",
        f"FROM golang:$GO@{D256} AS Build",
        "RUN --mount=type=bind,from=busybox,target=/b true",
        "FROM build AS test",
        "FROM alpine:3.19",
        "COPY --from=nginx /a /a",
    ))
    assert result == ScanResult(
        runtime=BaseImage(ImageRef("docker.io", "library/alpine", "3.19", None), DependencyType.RUNTIME,
                          None, None),
        build_time=(
            BaseImage(ImageRef("docker.io", "library/golang", "1.22", D256), DependencyType.BUILD_TIME,
                      None, "build"),
            BaseImage(ImageRef("docker.io", "library/busybox", "latest", None), DependencyType.BUILD_TIME,
                      None, "build"),
            BaseImage(ImageRef("docker.io", "library/nginx", "latest", None), DependencyType.BUILD_TIME,
                      None, None),
        ),
        stages=("build", "test"),
    )
    assert result.build_time[0].image.is_pinned
    assert str(DependencyType.BUILD_TIME) == "BuildTime" and str(DependencyType.RUNTIME) == "RunTime"


def test_runtime_stage_is_where_it_first_appears() -> None:
    result = scan(lines("FROM alpine AS base", "FROM golang AS build", "FROM base AS final"))
    assert result.runtime is not None
    assert (str(result.runtime.image), result.runtime.type, result.runtime.stage) == (
        hub("alpine:latest"), DependencyType.RUNTIME, "base")
    assert [(base.type, base.stage) for base in result.build_time] == [(DependencyType.BUILD_TIME, "build")]


def test_build_args_mapping_is_not_modified() -> None:
    args = {"TAG": "3.20"}
    scan(lines("ARG TAG=3.19", "ARG OTHER=x", "FROM alpine:$TAG"), args)
    assert args == {"TAG": "3.20"}


# (Dockerfile, build args, target, expected text in the message, expected text in the hint)
ERRORS = {
    "empty": ("", None, None, "The Dockerfile is empty", "FROM"),
    "blank": ("  \n\n\t\n", None, None, "The Dockerfile is empty", "FROM"),
    "bom only": ("\ufeff", None, None, "The Dockerfile is empty", "FROM"),
    "comments only": (lines("# just a comment"), None, None, "no FROM instruction", "FROM"),
    "no from": (lines("ARG X=1"), None, None, "no FROM instruction", "FROM"),
    "run before from": (lines("RUN echo hi", "FROM alpine"), None, None,
                        "RUN on line 1 comes before the first FROM; only ARG can", "Move it"),
    "env before from": (lines("# c", "ENV A=b", "FROM alpine"), None, None,
                        "ENV on line 2 comes before the first FROM", "Move it"),
    "unknown target": (lines("FROM golang AS build", "FROM alpine AS final"), None, "nope",
                       "Target stage 'nope' is not in the Dockerfile", "build, final"),
    "target without named stages": (lines("FROM alpine"), None, "x", "Target stage 'x'", "AS name"),
    "unresolved arg": (lines("ARG TAG", "FROM alpine:$TAG"), None, None,
                       "Cannot resolve $TAG in FROM on line 2: ARG TAG has no default", "--arg TAG=value"),
    "unresolved arg empties image": (lines("ARG IMAGE", "FROM ${IMAGE}"), None, None,
                                     "Cannot resolve $IMAGE in FROM on line 2", "give the ARG a default"),
    "empty arg": (lines("ARG IMAGE=", "FROM $IMAGE"), None, None,
                  "Cannot resolve $IMAGE in FROM on line 2: ARG IMAGE is empty", "--arg IMAGE=value"),
    "undeclared arg": (lines("FROM $IMAGE"), {"IMAGE": "alpine"}, None,
                       "Cannot resolve $IMAGE in FROM on line 1: it is not declared with ARG",
                       "Declare it with ARG IMAGE before the first FROM"),
    "builder arg in image": (lines("FROM golang:1.22-$TARGETARCH"), None, None,
                             "Cannot resolve $TARGETARCH in FROM on line 1: the builder sets it",
                             "--arg TARGETARCH=value"),
    "required form": (lines("ARG TAG", "FROM alpine:${TAG:?alpine-version-needed}"), None, None,
                      "Cannot resolve $TAG in FROM on line 2: alpine-version-needed", "--arg TAG"),
    "required form empty": (lines("ARG TAG=", "FROM alpine:${TAG:?}"), None, None,
                            "Cannot resolve $TAG in FROM on line 2: it is not set", "--arg TAG"),
    "unsupported substitution": (lines("ARG T=3.19", "FROM alpine:${T:=3.20}"), None, None,
                                 "FROM on line 2: 'alpine:${T:=3.20}' uses an unsupported substitution '${T:=...}'",
                                 "${VAR:-default}"),
    "unterminated substitution": (lines("FROM alpine:${T"), None, None, "without its closing", "${VAR}"),
    "bad substitution": (lines("FROM alpine:${}"), None, None, "bad substitution", "${VAR}"),
    "unterminated single quote": (lines("FROM alpine:3.19'"), None, None,
                                  "FROM on line 1: 'alpine:3.19'' has a ' without its closing quote", "Close"),
    "unterminated double quote": (lines('ARG T="3.19', "FROM alpine"), None, None,
                                  "ARG on line 1: '\"3.19' has a \" without its closing quote", "Close"),
    "positional parameter empties image": (lines("FROM $1"), None, None,
                                           "Cannot resolve $1 in FROM on line 1: positional and special", "Use an ARG"),
    "deep nesting": (lines("ARG A", "FROM alpine:" + "${A:-" * 200 + "3.19" + "}" * 200), None, None,
                     "FROM on line 2: 'alpine:" + "${A:-" * 10 + "${A...' (1,211 characters) nests ${...} more "
                     "than 32 levels deep", "fewer nested"),
    "bad arg default": (lines("ARG T=${X", "FROM alpine"), None, None, "ARG on line 1:", "${VAR}"),
    "unresolved platform": (lines("ARG ARCH", "FROM --platform=linux/$ARCH alpine"), None, None,
                            "Cannot resolve $ARCH in FROM on line 2", "--arg ARCH=value"),
    "invalid platform": (lines("FROM --platform=plan9/amd64 alpine"), None, None,
                         "'plan9' is not a valid OS in FROM on line 1 --platform", "linux"),
    "platform without value": (lines("FROM --platform linux/amd64 alpine"), None, None,
                               "FROM on line 1 has '--platform' without '='", "FROM [--platform"),
    "unknown from flag": (lines("FROM --pull=always alpine"), None, None,
                          "FROM on line 1 has an unknown flag '--pull=always'", "FROM [--platform"),
    "invalid image": (lines("FROM Alpine"), None, None,
                      "Invalid image reference 'Alpine': repository name must be lowercase (FROM on line 1)",
                      "registry.example.com"),
    "invalid image after expansion": (lines("ARG IMAGE=alpine:", "FROM ${IMAGE}"), None, None,
                                      "Invalid image reference 'alpine:'", "(for example"),
    "invalid image from build arg": (lines("ARG IMAGE=alpine", "FROM $IMAGE"), {"IMAGE": "a b"}, None,
                                     "(FROM on line 2)", "registry.example.com"),
    "escaped dollar stays literal": (lines("ARG TAG=3.19", "FROM alpine:\\$TAG"), None, None,
                                     "Invalid image reference 'alpine:$TAG'", "registry.example.com"),
    "single quotes stay literal": (lines("ARG TAG=3.19", "FROM 'alpine:$TAG'"), None, None,
                                   "Invalid image reference 'alpine:$TAG'", "registry.example.com"),
    "empty quoted image": (lines('FROM ""'), None, None, "FROM on line 1 names an empty image", "FROM"),
    "from without image": (lines("FROM"), None, None, "FROM on line 1 names no image", "FROM"),
    "from without image mid-file": (lines("FROM alpine", "FROM ", "RUN x"), None, None,
                                    "FROM on line 2 names no image", "FROM"),
    "from with extra words": (lines("FROM alpine builder"), None, None,
                              "FROM on line 1 must be 'FROM image' or 'FROM image AS name'", "AS name"),
    "as without name": (lines("FROM alpine AS"), None, None, "FROM on line 1 must be", "AS name"),
    "invalid stage name": (lines("FROM alpine AS 1st"), None, None,
                           "names its stage '1st', which is not a valid stage name", "letter"),
    "duplicate stage name": (lines("FROM golang AS build", "FROM alpine AS Build"), None, None,
                             "FROM on line 2 names its stage 'build', which line 1 already uses", "different"),
    "structure checked after target": (lines("FROM golang AS build", "FROM alpine AS x", "FROM alpine AS x"),
                                       None, "build", "already uses", "different"),
    "copy from index out of range": (lines("FROM golang", "FROM alpine", "COPY --from=2 /a /a"), None, None,
                                     "COPY --from on line 3 copies from stage 2, but the Dockerfile has only 2",
                                     "earlier stage"),
    "copy from own index": (lines("FROM golang", "COPY --from=0 /a /a"), None, None,
                            "COPY --from on line 2 refers to its own stage", "earlier stage"),
    "copy from own name": (lines("FROM golang AS build", "COPY --from=build /a /a"), None, None,
                           "COPY --from on line 2 refers to its own stage", "earlier stage"),
    "copy from invalid image": (lines("FROM alpine", "COPY --from=Bad:1 /a /a"), None, None,
                                "Invalid image reference 'Bad:1'", "registry.example.com"),
    "copy from unresolved": (lines("FROM alpine", "COPY --from=$TOOLS /a /a"), None, None,
                             "Cannot resolve $TOOLS in COPY --from on line 2: it is not declared with ARG in "
                             "this stage", "Declare it with ARG TOOLS in the stage"),
    "mount from invalid image": (lines("FROM alpine", "RUN --mount=type=bind,from=a//b,target=/b ls"), None,
                                 None, "(RUN --mount on line 2)", "registry.example.com"),
    "mount from own stage": (lines("FROM alpine AS a", "RUN --mount=from=a,target=/x ls"), None, None,
                             "RUN --mount on line 2 refers to its own stage", "earlier stage"),
    "arg without name": (lines("ARG =x", "FROM alpine"), None, None, "ARG on line 1 has no name", "ARG NAME"),
    "arg declares nothing": (lines("ARG", "FROM alpine"), None, None, "ARG on line 1 declares nothing",
                             "ARG NAME"),
    "empty platform from an arg without value": (
        lines("ARG P", "FROM --platform=$P alpine"), None, None,
        "Cannot resolve $P in FROM on line 2: ARG P has no default and no --arg gave it a value, so "
        "--platform='$P' is empty", "--arg P=value"),
    "misspelt builder arg empties the platform": (
        lines("FROM --platform=$BULIDPLATFORM golang AS build", "FROM alpine"), None, None,
        "Cannot resolve $BULIDPLATFORM in FROM on line 1: it is not declared with ARG before the first FROM",
        "Did you mean $BUILDPLATFORM?"),
    "empty quoted platform": (lines('FROM --platform="" alpine'), None, None,
                              "FROM on line 1 has --platform='\"\"', which is empty", "leave out --platform"),
    "copy from a later stage": (lines("FROM alpine AS a", "COPY --from=b /x /x", "FROM busybox AS b", "FROM a"),
                                None, None, "COPY --from on line 2 uses stage 'b', which is defined later (line 3)",
                                "Move that stage above line 1"),
    "copy from a later stage index": (lines("FROM alpine AS a", "COPY --from=1 /x /x", "FROM busybox"), None, "a",
                                      "COPY --from on line 2 uses stage 1 (line 3), which is defined later", "Move"),
    "mount from a later stage": (lines("FROM alpine AS a", "RUN --mount=from=b,target=/b ls", "FROM alpine AS b"),
                                 None, "a", "RUN --mount on line 2 uses stage 'b', which is defined later", "Move"),
    "copy from a later stage the target needs": (
        lines("FROM alpine AS base", "COPY --from=tools / /", "FROM base AS app", "FROM busybox AS tools"), None, "app",
        "COPY --from on line 2 uses stage 'tools', which is defined later (line 4)", "Move"),
    "stages in a circle": (
        lines("FROM alpine AS a", "COPY --from=b / /", "FROM alpine AS b", "COPY --from=c / /", "FROM alpine AS c",
              "RUN --mount=from=a,target=/a ls"), None, None,
        "Stages 'a' -> 'b' -> 'c' -> 'a' use each other in a circle (a circular dependency, COPY --from on line 2, "
        "COPY --from on line 4, RUN --mount on line 6)", "earlier stage"),
    "stages in a circle after the target": (
        lines("FROM alpine AS a", "FROM alpine AS b", "COPY --from=c / /", "FROM alpine AS c", "COPY --from=b / /"),
        None, "a", "Stages 'b' -> 'c' -> 'b' use each other in a circle", "earlier stage"),
    "dockerfile over the size limit": (lines("FROM alpine", *["# " + "x" * 60_000] * 5), None, None,
                                       "The Dockerfile is 300,027 bytes; acrtask reads Dockerfiles of up to 262,144",
                                       "-f/--file"),
    "line over BuildKit's limit": (lines("FROM alpine", "RUN " + "x" * 70_000), None, None,
                                   "Line 2 of the Dockerfile is 70,004 bytes long; a Dockerfile line can be up to "
                                   "65,535 bytes, as in BuildKit", "backslash"),
    "nesting thousands deep": (lines("ARG A", "FROM alpine:" + "${A:-" * 10_000 + "3.19" + "}" * 10_000), None, None,
                               "FROM on line 2: 'alpine:${A:-${A:-", "fewer nested"),
    "huge image name": (lines("FROM " + "a" * 60_000), None, None,
                        "Invalid image reference 'aaaaaaaaaa", "image name"),
    "line numbers after continuation and bom": (
        lines("\ufeff# c", "FROM golang AS build", "RUN a \\", "  b \\", "  c", "FROM Bad"), None, None,
        "(FROM on line 6)", "registry.example.com"),
}


@pytest.mark.parametrize(("text", "args", "target", "message", "hint"), list(ERRORS.values()), ids=list(ERRORS))
def test_errors(text: str, args: dict[str, str] | None, target: str | None, message: str, hint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        scan(text, args, target)
    error = caught.value
    assert message in error.message
    assert error.hint is not None and hint in error.hint
    assert "\n" not in error.message and "\n" not in error.hint
    assert len(error.message) < 400  # long words are shortened, not pasted into the one ERROR line
    assert error.exit_code == 2


@pytest.mark.timeout(60)  # before the limits, this scan ran for more than 5 minutes
def test_a_ten_megabyte_line_is_refused_before_parsing() -> None:
    with pytest.raises(ValidationError) as caught:
        scan("FROM alpine\nRUN echo " + "x" * (10 * 1024 * 1024) + "\n")
    assert caught.value.message == ("The Dockerfile is 10,485,782 bytes; acrtask reads Dockerfiles of up to 262,144 "
                                    "bytes (256 KiB).")


def test_scan_is_pure(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """No file access and no environment: a build arg named like an environment variable is not read."""
    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("scan opened a file")

    monkeypatch.setenv("TAG", "9.9")
    monkeypatch.setattr("builtins.open", no_open)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    result = scan(lines("ARG TAG=3.19", "FROM alpine:$TAG"))
    assert result.runtime is not None and result.runtime.image.tag == "3.19"
