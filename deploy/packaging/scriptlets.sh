# joulebook's maintainer-script functions, shared by the .deb (postinst, prerm, postrm) and the
# .rpm (%post, %preun): scripts/package pastes this file above each script's few lines, so both
# formats follow the same rules (docs/install.md, What the packages do):
# - installing never enables nor starts a unit, unless a systemd preset of the admin's
#   (/etc/systemd/system-preset/*.preset) says `enable UNIT`: then it is enabled, and started
#   when systemd runs;
# - an upgrade restarts a unit that was running (try-restart), and nothing else;
# - removal stops and disables the units (no link is left to a unit file that is gone);
# - purge (.deb) removes what the package made outside its file list: the generated web
#   configuration and password, the state directory, the GPU mapping folder.
# POSIX sh; every systemctl call tolerates a machine without systemd running (containers,
# chroots): `enable` and `disable` work offline, the others are skipped.

jb_systemd_running() {
    [ -d /run/systemd/system ]
}

# True if an admin's preset file enables unit $1 (the first matching line decides, as systemd does).
jb_preset_enables() {
    for f in /etc/systemd/system-preset/*.preset; do
        [ -f "$f" ] || continue
        verdict=$(awk -v u="$1" '$2 == u && ($1 == "enable" || $1 == "disable") { print $1; exit }' "$f")
        if [ -n "$verdict" ]; then
            [ "$verdict" = enable ]
            return
        fi
    done
    return 1
}

jb_daemon_reload() {
    if jb_systemd_running; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
}

# First install of units "$@".
jb_units_installed() {
    jb_daemon_reload
    for u in "$@"; do
        if jb_preset_enables "$u"; then
            systemctl enable "$u" >/dev/null 2>&1 || true
            if jb_systemd_running; then
                systemctl start "$u" || true
            fi
        fi
    done
}

# Upgrade: units that were running restart on the new files.
jb_units_upgraded() {
    jb_daemon_reload
    if jb_systemd_running; then
        systemctl try-restart "$@" >/dev/null 2>&1 || true
    fi
}

# Removal (before the files go).
jb_units_removed() {
    if jb_systemd_running; then
        systemctl stop "$@" >/dev/null 2>&1 || true
    fi
    systemctl disable "$@" >/dev/null 2>&1 || true
    # A link the admin made by hand in another target's folder goes too.
    for u in "$@"; do
        rm -f /etc/systemd/system/*.wants/"$u" /etc/systemd/system/*.requires/"$u"
    done
}

# Purge of the exporter: generated secrets, state, runtime folder.
jb_exporter_purged() {
    rm -f /etc/joulebook/web.yml /etc/joulebook/prometheus.password
    rm -rf /var/lib/joulebook /var/lib/private/joulebook
    rm -rf /run/joulebook/gpu-map
    rmdir /run/joulebook /etc/joulebook 2>/dev/null || true
}

# Purge of the reporter: its state directory, if a version of its unit made one.
jb_reporter_purged() {
    rm -rf /var/lib/joulebook-report /var/lib/private/joulebook-report
    rmdir /etc/joulebook 2>/dev/null || true
}
