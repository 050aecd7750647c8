# A base commit checked out beside the working tree, for the harnesses that compare two builds
# (perf/ab, perf/live/run). Sourced, not run. Only the worktree made here is ever removed: no
# 'git worktree prune', which would touch other worktrees' records.
#
#   base_resolve ROOT COMMIT    sets BASE_SHA (full) and BASE_SHORT; returns 1 if COMMIT is not a commit of ROOT
#   base_checkout ROOT PREFIX   checks BASE_SHA out, detached, into a new temporary directory; sets BASE_WORK
#                               (the directory, removed by base_remove) and BASE_WT (the tree, BASE_WORK/base)
#   base_remove ROOT            removes the worktree and BASE_WORK; safe to call twice or before base_checkout

BASE_SHA=""
BASE_SHORT=""
BASE_WORK=""
BASE_WT=""

base_resolve() {
    BASE_SHA="$(git -C "$1" rev-parse --verify --quiet "$2^{commit}")" || return 1
    BASE_SHORT="$(git -C "$1" rev-parse --short "$BASE_SHA")"
}

base_checkout() {
    BASE_WORK="$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX")"
    BASE_WT="$BASE_WORK/base"
    git -C "$1" worktree add --detach --quiet "$BASE_WT" "$BASE_SHA"
}

base_remove() {
    if [[ -n "$BASE_WT" && -d "$BASE_WT" ]]; then
        git -C "$1" worktree remove --force "$BASE_WT" >/dev/null 2>&1 || true
    fi
    if [[ -n "$BASE_WORK" ]]; then
        rm -rf "$BASE_WORK"
    fi
}
