#!/bin/sh
# Alertmanager entrypoint for compose: observability/alertmanager/alertmanager.yml keeps no
# secrets; it reads *_file paths under $AM_SECRETS_DIR and has one ${ALERT_TELEGRAM_BOT_TOKEN}
# placeholder (Telegram's bot_token_file needs Alertmanager >= 0.26). This writes the files from
# the environment into a tmpfs, renders the placeholder, and execs Alertmanager.
# POSIX sh: the prom/alertmanager image is busybox.
set -eu

: "${AM_SECRETS_DIR:=/etc/alertmanager/secrets}"
: "${AM_TEMPLATE:=/etc/alertmanager/alertmanager.yml}"
: "${AM_BIN:=/bin/alertmanager}"
: "${ALERT_SLACK_WEBHOOK_URL:?ALERT_SLACK_WEBHOOK_URL is required}"
: "${ALERT_SMTP_PASSWORD:?ALERT_SMTP_PASSWORD is required}"
: "${ALERT_TELEGRAM_BOT_TOKEN:?ALERT_TELEGRAM_BOT_TOKEN is required}"

umask 077
mkdir -p "$AM_SECRETS_DIR"
printf '%s' "$ALERT_SLACK_WEBHOOK_URL" > "$AM_SECRETS_DIR/slack_webhook_url"
printf '%s' "$ALERT_SMTP_PASSWORD" > "$AM_SECRETS_DIR/smtp_password"
printf '%s' "$ALERT_TELEGRAM_BOT_TOKEN" > "$AM_SECRETS_DIR/telegram_bot_token"

case "$ALERT_TELEGRAM_BOT_TOKEN" in
  *[!A-Za-z0-9:_-]*) echo "ALERT_TELEGRAM_BOT_TOKEN has characters a bot token never has" >&2; exit 64 ;;
esac
sed "s|\${ALERT_TELEGRAM_BOT_TOKEN}|$ALERT_TELEGRAM_BOT_TOKEN|g" "$AM_TEMPLATE" \
  > "$AM_SECRETS_DIR/alertmanager.yml"

exec "$AM_BIN" \
  --config.file="$AM_SECRETS_DIR/alertmanager.yml" \
  --storage.path=/alertmanager \
  "$@"
