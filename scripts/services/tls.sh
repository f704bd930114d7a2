# shellcheck shell=bash
# TLS material for every service, in .services/tls: a test CA, a server certificate
# for localhost/127.0.0.1/::1, a client certificate (CN = the certificate-only user)
# and an unrelated CA. Always set up first by scripts/services.sh.

CA_CN=extdata-test-ca
WRONG_CA_CN=extdata-wrong-ca
WRONG_HOST=extdata-wrong-host.test

setup_tls() {
    log "TLS material in $TLS_DIR"
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$TLS_DIR"
    local d=$TLS_DIR
    if ! cert_usable "$d/ca.pem" "$d/ca.key"; then
        gen_ca "$CA_CN" "$d/ca.pem" "$d/ca.key"
        rm -f "$d/server.pem" "$d/client.pem"     # signed by the old CA
        changed "generated CA $d/ca.pem"
    fi
    if ! cert_usable "$d/server.pem" "$d/server.key" "$d/ca.pem"; then
        gen_leaf localhost "$d/server.pem" "$d/server.key" serverAuth \
            "DNS:localhost, IP:127.0.0.1, IP:::1"
        changed "generated server certificate $d/server.pem"
    fi
    if ! cert_usable "$d/client.pem" "$d/client.key" "$d/ca.pem"; then
        gen_leaf "$CERT_USER" "$d/client.pem" "$d/client.key" clientAuth
        changed "generated client certificate $d/client.pem (CN=$CERT_USER)"
    fi
    if [[ ! -s $d/wrong-ca.pem ]]; then
        # Only the certificate is needed (to show that trusting it fails); drop the key.
        gen_ca "$WRONG_CA_CN" "$d/wrong-ca.pem" "$d/wrong-ca.key"
        rm -f "$d/wrong-ca.key"
        changed "generated unrelated CA $d/wrong-ca.pem"
    fi
    # libpq refuses a client key that group or others can read.
    chmod 600 "$d/ca.key" "$d/server.key" "$d/client.key"
    # A name of 127.0.0.1 that the server certificate does not list: the TLS tests'
    # wrong host name (crates/extdata-reliability/tests/tls.rs reads it from /etc/hosts).
    if ! awk -v name="$WRONG_HOST" '$1 == "127.0.0.1" { for (i = 2; i <= NF; i++) if ($i == name) found = 1 }
            END { exit !found }' /etc/hosts; then
        printf '127.0.0.1 %s\n' "$WRONG_HOST" >>/etc/hosts
        changed "/etc/hosts: $WRONG_HOST is 127.0.0.1 (not in the server certificate)"
    fi

    render_env tls DIR="$d"
}
