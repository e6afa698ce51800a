#!/usr/bin/env bash
# Install Apache Maven VERSION into DEST from Maven Central, refusing an archive whose SHA-512 is not
# the pinned one. The `mvn` already on PATH only fetches the archive by its coordinates
# (org.apache.maven:apache-maven:VERSION:tar.gz:bin); any Maven 3 does, even one too old to build
# the project (the image build bootstraps from Ubuntu's 3.6.3, which Quarkus 2.x cannot use).
#
#   docker/install_maven.sh VERSION SHA512 DEST
#
# The image build runs it (docker/Dockerfile); tests/test_compose.py runs it here with this
# machine's Maven and checks the result and the refusal of a wrong checksum.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 VERSION SHA512 DEST" >&2
    exit 2
fi
version=$1 sha512=$2 dest=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "maven: fetching org.apache.maven:apache-maven:${version}:tar.gz:bin"
mvn -B -q -Dstyle.color=never --strict-checksums \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="org.apache.maven:apache-maven:${version}:tar.gz:bin" -DoutputDirectory="$work" -Dmdep.useBaseVersion=true
archive="$work/apache-maven-${version}-bin.tar.gz"
if ! echo "${sha512}  ${archive}" | sha512sum -c --status -; then
    echo "maven: apache-maven-${version}-bin.tar.gz does not have the pinned SHA-512; not installing it" >&2
    exit 1
fi
mkdir -p "$dest"
tar -xzf "$archive" -C "$dest" --strip-components=1
echo "maven: $("$dest/bin/mvn" -v | head -n 1) installed in ${dest} (SHA-512 verified)"
