#!/usr/bin/env bash
# Builds the C# client with mono's mcs: the runtime (ServerCore/), the packets generated from
# game-server/PDL.xml (Generated/) and the console sample (sample/) into Sample.exe, and the
# runtime's own checks (checks/) into RuntimeChecks.exe.
#
# C# 7.2, the newest mcs knows (Unity takes 7.3, so this is stricter); warnings are errors;
# no -unsafe, so unsafe code does not compile.
#
#   clients/csharp/build.sh [OUT_DIR]      # default: target/csharp at the workspace root
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/csharp}"
mkdir -p "$out"
cd "$here"
flags=(-nologo -langversion:7.2 -warnaserror+)
mcs "${flags[@]}" -out:"$out/Sample.exe" ServerCore/*.cs Generated/*.cs sample/*.cs
mcs "${flags[@]}" -out:"$out/RuntimeChecks.exe" ServerCore/*.cs checks/*.cs
echo "built $out/Sample.exe and $out/RuntimeChecks.exe"
