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

# start_s3 NAME: starts s3s-fs (ensure_s3_server installs it) on a free loopback port, with
# a fresh root directory and a generated key, that lives until this shell exits (the root goes
# with it). Sets NAME_ENDPOINT (http://127.0.0.1:PORT), NAME_ROOT (a bucket is a directory
# made there), NAME_PID (the server's) and exports the AWS_* environment a client needs.
# Fill it through the S3 API (floodgate-s3-put), not by copying into NAME_ROOT: s3s-fs keeps
# an uploaded object's ETag, and hashes a file copied in by hand on every GET.
start_s3() {
    local name="$1"
    local work="${FG_WORK:?FG_WORK must be set}"
    local fifo="$work/$name.s3.hold" pidfile="$work/$name.s3.pid" log="$work/$name.s3.log"
    local root key secret port
    root="$(mktemp -d "$work/$name.s3.XXXXXX")"
    key="fg-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
    secret="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
    # A port nothing answers on; s3s-fs exits if another takes it first (checked below).
    while :; do
        port=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    done
    rm -f "$fifo" "$pidfile"
    mkfifo "$fifo"
    # The guardian ends the server and removes its root when the write end below closes.
    sh -c 'pidfile="$1" log="$2" root="$3"
        shift 3
        "$@" >"$log" 2>&1 &
        srv=$!
        echo "$srv" >"$pidfile"
        cat >/dev/null
        kill "$srv" 2>/dev/null
        wait "$srv" 2>/dev/null
        rm -rf "$root"' s3-guardian "$pidfile" "$log" "$root" \
        s3s-fs --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" "$root" <"$fifo" &
    # Keep the write end open for the life of this shell: when it exits, the server goes.
    local fd
    exec {fd}>"$fifo"
    local pid="" ready=0
    for _ in $(seq 200); do
        [ -z "$pid" ] && [ -s "$pidfile" ] && pid="$(cat "$pidfile")"
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "s3s-fs $name failed to start:" >&2
            cat "$log" >&2
            return 1
        fi
        if [ -n "$pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ "$ready" = 0 ]; then
        echo "s3s-fs $name did not listen on 127.0.0.1:$port within 20 s" >&2
        return 1
    fi
    export "${name}_ENDPOINT=http://127.0.0.1:$port" "${name}_ROOT=$root" "${name}_PID=$pid"
    export AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
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
