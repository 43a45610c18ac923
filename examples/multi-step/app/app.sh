#!/bin/sh
echo "hello from the app, running on base $(cat /etc/base-version 2>/dev/null || echo unknown)"
