# Shared by scripts/test, scripts/demo and scripts/bench. Source it; do not run it.
# shellcheck shell=bash

FG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin"

# The sandboxes let in the operating-system account that started them, by MariaDB's
# unix_socket, as the database account of the same name (root for root): no password.
FG_USER="$(id -un)"
export FG_USER

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# Installs the Debian packages the given tools need, if any is missing. apt-get update runs
# first on a fresh machine (its package lists may be empty or stale).
ensure_tools() {
    local missing=() tool pkg
    for tool in "$@"; do
        case "$tool" in
            mariadbd) pkg=mariadb-server ;;
            mariadb) pkg=mariadb-client ;;
            mariadb-dump) pkg=mariadb-client ;;
            mydumper | myloader) pkg=mydumper ;;
            sysbench) pkg=sysbench ;;
            zstd) pkg=zstd ;;
            /usr/bin/time) pkg=time ;;
            *) pkg="$tool" ;;
        esac
        if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]} from Debian"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
    fi
    export PATH="$PATH:/usr/sbin"
}

# The S3-compatible server the object-storage tests and benches run against: s3s-fs, built
# from crates.io (a few minutes, once per machine). Pinned: 0.14.1 is the last release that
# builds with Rust 1.95.
S3S_FS_VERSION=0.14.1
ensure_s3_server() {
    if s3s-fs --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
        return
    fi
    log "installing s3s-fs $S3S_FS_VERSION from crates.io (the tests' S3-compatible server)"
    cargo install --quiet --locked --version "$S3S_FS_VERSION" --features binary s3s-fs
}

# start_sandbox NAME [floodgate-sandbox args...]: starts a throwaway server that lives until
# this shell exits, and sets NAME_SOCKET, NAME_DIR, NAME_PID and NAME_USER (and NAME_PORT
# with --tcp). It listens on its socket only unless given --tcp.
start_sandbox() {
    local name="$1"
    shift
    local work="${FG_WORK:?FG_WORK must be set}"
    local fifo="$work/$name.hold" env="$work/$name.env"
    rm -f "$fifo" "$env"
    mkfifo "$fifo"
    "${SANDBOX:-$FG_ROOT/target/release/floodgate-sandbox}" --env-file "$env" "$@" <"$fifo" &
    # Keep the write end open for the life of this shell: when it exits, the server goes.
    local fd
    exec {fd}>"$fifo"
    local i
    for i in $(seq 600); do
        [ -s "$env" ] && break
        if ! kill -0 $! 2>/dev/null; then
            echo "sandbox $name failed to start" >&2
            return 1
        fi
        sleep 0.1
    done
    local key value
    while IFS='=' read -r key value; do
        printf -v "${name}_${key}" '%s' "$value"
    done <"$env"
}

# sql SOCKET [mariadb args...] < statements
sql() {
    local sock="$1"
    shift
    mariadb --no-defaults -u"$FG_USER" --socket="$sock" "$@"
}

# timed OUTFILE CMD...: runs CMD, appends "wall user sys maxrss_kb" to OUTFILE.
timed() {
    local out="$1"
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$out.time" "$@"
    cat "$out.time" >>"$out"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# make_certificates DIR: a CA and a server certificate for 127.0.0.1 (and localhost) signed
# by it, for TLS benchmarks: ca.pem, server.pem, server.key.
make_certificates() {
    local dir="$1"
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=floodgate bench CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
        -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
    # The server (the mysql account when this runs as root) reads them.
    chmod 755 "$dir" && chmod 644 "$dir"/*
}
