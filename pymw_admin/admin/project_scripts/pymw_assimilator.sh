#!/bin/sh
# File a finished BOINC work unit where the pymw-admin BOINC interface finds it.
#
# BOINC's script_assimilator runs this once per work unit, through system(), from
# PROJECT/tmp_HOST with PROJECT/bin/ as ../bin:
#
#     pymw_assimilator WU_ID FILE...                      a canonical result exists
#     pymw_assimilator --error MASK WU_NAME WU_ID BATCH   the work unit failed
#
# A result is moved (one rename: it appears whole) to PROJECT/pymw/results/WU_NAME.result, and
# an empty file is left in its place for BOINC's file deleter to remove. POSIX sh and a single
# mv: it runs once per result, and a Python start-up would cost more than all the rest of the
# way. Failures go to pymw_assimilate_error next to it (Python: it asks the database for the
# stderr the hosts reported). Exit 0 on success; BOINC retries on non-zero.
set -u
bin=${0%/*}
[ "${1-}" = --error ] && exec "$bin/pymw_assimilate_error" "$@"
if [ $# -lt 2 ]; then
    echo "usage: pymw_assimilator WU_ID FILE..." >&2
    exit 2
fi
if [ -f config.xml ]; then results=pymw/results; else results=../pymw/results; fi
[ -d "$results" ] || mkdir -p "$results" || exit 1
shift
for path in "$@"; do
    # upload names are RESULTNAME_rRANDOM_INDEX (older servers: RESULTNAME_INDEX); RESULTNAME
    # is WUNAME_REPLICA: the work unit's name comes from the server's path, never the content
    name=${path##*/}
    index=${name##*_}
    name=${name%_*}
    random=${name##*_}
    case $random in
        r|r*[!0-9]*) ;;
        r*) name=${name%_*} ;;
    esac
    replica=${name##*_}
    wu=${name%_*}
    case $index$replica in
        *[!0-9]*|'') wu='' ;;
    esac
    if [ -z "$wu" ] || [ "$wu" = "$name" ]; then
        echo "pymw_assimilator: unexpected upload name $path" >&2
        exit 1
    fi
    if [ ! -e "$path" ]; then
        # the upload handler answers success when it cannot write (BOINC takes that for a
        # duplicate upload): say so to the master rather than leave it waiting for ever
        [ -e "$results/$wu.result" ] && continue
        echo "pymw_assimilator: $path is missing: the upload was lost" >&2
        printf '{"error": "the result file is missing on the server: the upload was lost (can the web server write to the upload directory?)"}\n' \
            > "$results/$wu.error.tmp" && mv -f -- "$results/$wu.error.tmp" "$results/$wu.error" || exit 1
        continue
    fi
    # an empty file is what an earlier run left: that result is filed (or collected) already
    [ -s "$path" ] || continue
    mv -f -- "$path" "$results/$wu.result" || exit 1
    : > "$path"
done
exit 0
