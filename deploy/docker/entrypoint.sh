#!/bin/sh
# The images' entrypoint: checks that the files and settings the served role needs are there,
# then runs `probelog` with the same arguments. A missing one ends in one line on stderr and
# exit code 2, before any service starts (and before a pod reports anything but this line).
#
#   probelog-entrypoint serve [ROLE|--embedded] [FLAGS...]   checked, then `probelog serve ...`
#   probelog-entrypoint ANY OTHER COMMAND                    `probelog ...` unchecked
#
# `serve` alone serves the image's own role (PROBELOG_IMAGE_ROLE, set when the image is built).
# A setting is the flag's value when the command line gives the flag, else its PROBELOG_*
# variable.
set -eu

fail() {
    echo "probelog-entrypoint: $*" >&2
    exit 2
}

# setting FLAG VARIABLE ARGS...: the value of --FLAG among ARGS, else of $VARIABLE.
setting() {
    flag="--$1"
    variable=$2
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
            "$flag") [ $# -ge 2 ] && { echo "$2"; return; } ;;
            "$flag"=*) echo "${1#*=}"; return ;;
        esac
        shift
    done
    eval "echo \"\${$variable:-}\""
}

# need_file WHAT VALUE: VALUE names a readable file.
need_file() {
    [ -n "$2" ] || fail "$1 is not set"
    [ -f "$2" ] || fail "$1 $2 does not exist (is the data volume mounted? see the chart's README, 'Data')"
    [ -r "$2" ] || fail "$1 $2 is not readable by uid $(id -u)"
}

# A path, not a name the service knows (a pretrained tag, "imagenet1k"): the file must be there.
is_path() {
    case $1 in
        /* | ./* | ../* | *.pt | *.bin | *.safetensors | *.txt | *.npz | *.json) return 0 ;;
        *) return 1 ;;
    esac
}

check_clip() {
    model=$(setting clip-model PROBELOG_CLIP_MODEL "$@")
    pretrained=$(setting clip-pretrained PROBELOG_CLIP_PRETRAINED "$@")
    config=$(setting clip-config PROBELOG_CLIP_CONFIG "$@")
    [ -n "$model" ] || fail "the CLIP model (PROBELOG_CLIP_MODEL or --clip-model) is not set"
    case $model in hf-hub:*) ;; *)
        [ -n "$pretrained" ] || fail "the CLIP checkpoint (PROBELOG_CLIP_PRETRAINED or --clip-pretrained) is not set"
        if is_path "$pretrained"; then need_file "the CLIP checkpoint" "$pretrained"; fi ;;
    esac
    if [ -n "$config" ]; then need_file "the CLIP model config" "$config"; fi
}

check_orchestrator() {
    probe_set=$(setting probe-set-file PROBELOG_PROBE_SET_FILE "$@")
    background=$(setting background PROBELOG_BACKGROUND "$@")
    if [ -n "$probe_set" ]; then need_file "the probe set" "$probe_set"; fi
    if [ -n "$background" ] && is_path "$background"; then need_file "the background list" "$background"; fi
}

check_store() {
    url=$(setting store-url PROBELOG_STORE_URL "$@")
    [ -n "$url" ] || fail "the store URL (PROBELOG_STORE_URL or --store-url) is not set"
    case $url in
        file://*)
            # The directory, or the nearest one above it that exists (the store makes the rest).
            dir=${url#file://}
            until [ -e "$dir" ]; do dir=$(dirname "$dir"); done
            [ -d "$dir" ] || fail "the store directory of $url cannot be made: $dir is not a directory"
            [ -w "$dir" ] || fail "the store directory of $url is not writable by uid $(id -u) ($dir)"
            ;;
        redis://* | rediss://* | unix://*) ;;
        *) fail "the store URL $url is neither file://, redis://, rediss:// nor unix://" ;;
    esac
}

if [ "${1:-}" = serve ]; then
    shift
    case ${1:-} in
        --embedded) role=embedded; shift ;;
        "" | -*)
            # No role named: the image's own (`--help` and the like pass through unchanged).
            case " $* " in *" --help "* | *" -h "*) exec probelog serve "$@" ;; esac
            role=${PROBELOG_IMAGE_ROLE:-}
            [ -n "$role" ] || fail "serve needs a role: orchestrator, indexer, descriptor-store, probe-runner, clip-encoder, ranker, web or --embedded"
            ;;
        *) role=$1; shift ;;
    esac
    case $role in
        embedded)
            world=$(setting world PROBELOG_WORLD "$@")
            if [ -n "$world" ]; then
                [ -d "$world" ] || fail "the world directory $world does not exist"
            else
                check_clip "$@"
                check_orchestrator "$@"
            fi
            check_store "$@"
            set -- --embedded "$@"
            ;;
        clip-encoder) check_clip "$@"; set -- "$role" "$@" ;;
        orchestrator | indexer) check_orchestrator "$@"; set -- "$role" "$@" ;;
        descriptor-store) check_store "$@"; set -- "$role" "$@" ;;
        *) set -- "$role" "$@" ;;
    esac
    exec probelog serve "$@"
fi
exec probelog "$@"
