# Sourced by 30-e2e-dollar0 through "$(dirname "$0")" (not a script: never run).
E2E_COMMON=e2e-common.sh
