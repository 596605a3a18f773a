#!/bin/sh
# dlp transparent web proxy with iptables (hosts without nftables). Same effect as dlp-transparent.nft:
# redirect the agents' TCP 80/443 to dlp's proxy ([proxy] mode = "transparent") and drop UDP/443 (QUIC)
# so browsers fall back to TCP. Run as root; `./dlp-transparent.iptables.sh remove` undoes it.
# Running it again adds nothing twice (each rule is checked with -C first); `remove` skips rules that are
# already gone. The user dlp runs as must exist: its own connections are exempt from the redirect.
set -eu

AGENTS="${AGENTS:-10.20.0.0/16}"
PROXY_PORT="${PROXY_PORT:-8080}"
DLP_USER="${DLP_USER:-dlp}"
ACTION="${1:-add}"

case "$ACTION" in
    add | remove) ;;
    *) echo "usage: $0 [add|remove]" >&2; exit 2 ;;
esac
if ! id -u "$DLP_USER" >/dev/null 2>&1; then
    echo "$0: user $DLP_USER does not exist (create it, or set DLP_USER to the user dlp runs as)" >&2
    exit 1
fi

# rule IPTABLES TABLE CHAIN SPEC...: append the rule unless present (add), delete it if present (remove).
rule() {
    ipt=$1 table=$2 chain=$3
    shift 3
    if "$ipt" -w -t "$table" -C "$chain" "$@" 2>/dev/null; then
        [ "$ACTION" = remove ] && "$ipt" -w -t "$table" -D "$chain" "$@"
    elif [ "$ACTION" = add ]; then
        "$ipt" -w -t "$table" -A "$chain" "$@"
    fi
    return 0
}

for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null 2>&1 || continue
    src="$AGENTS"
    # IPv6 agents: set AGENTS6 to their prefix. Unset, every IPv6 source is redirected, so IPv6 web
    # traffic fails closed unless dlp also listens on IPv6 (it is never forwarded uninspected).
    [ "$ipt" = ip6tables ] && src="${AGENTS6:-::/0}"
    # Agents' networks routed through this host.
    rule "$ipt" nat PREROUTING -s "$src" -p tcp -m multiport --dports 80,443 -j REDIRECT --to-ports "$PROXY_PORT"
    rule "$ipt" filter FORWARD -s "$src" -p udp --dport 443 -j DROP
    # This host's own traffic, except the proxy's upstream connections.
    rule "$ipt" nat OUTPUT -p tcp -m multiport --dports 80,443 -m owner ! --uid-owner "$DLP_USER" \
        -m addrtype ! --dst-type LOCAL -j REDIRECT --to-ports "$PROXY_PORT"
    rule "$ipt" filter OUTPUT -p udp --dport 443 -m owner ! --uid-owner "$DLP_USER" -j DROP
done

# Routing for the agents: forwarding on. send_redirects off: the agents must keep sending their traffic
# through this gateway, not be told by ICMP redirects to go around it to a router on the same segment.
if [ "$ACTION" = add ]; then
    sysctl -q -w net.ipv4.ip_forward=1
    sysctl -q -w net.ipv4.conf.all.send_redirects=0
fi
