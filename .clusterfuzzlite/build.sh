#!/bin/bash -eu
# Builds every fuzz target into $OUT with the OSS-Fuzz variables ($CC $CXX $CFLAGS
# $CXXFLAGS $LIB_FUZZING_ENGINE $OUT $SRC $WORK), with seed corpora, dictionaries and
# options. The shared libraries the targets need (libnanguard, LibTorch, libonnx,
# Z3, ...) go to $OUT/lib, found through RPATH $ORIGIN/lib ($ORIGIN in the build
# folder, for the CLI that writes the config), so that $OUT runs on a
# machine without them (the base-runner image).
root=$(cd "$(dirname "$0")/.." 2>/dev/null && [ -f CMakeLists.txt ] && pwd || echo "$SRC/nanguard")
build="$WORK/build-fuzz"
jobs=${NANGUARD_BUILD_JOBS:-$(nproc)}

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" \
  -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CXXFLAGS" \
  -DNANGUARD_FUZZ=ON -DNANGUARD_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" \
  -DNANGUARD_BUILD_TESTS=OFF -DNANGUARD_BUILD_BENCH=OFF \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN/lib;$ORIGIN'
ninja -C "$build" -j "$jobs" fuzz_model fuzz_loader fuzz_soundness nanguard_cli

mkdir -p "$OUT/lib"
for t in fuzz_model fuzz_loader fuzz_soundness; do cp "$build/$t" "$OUT/"; done
cp "$build/libnanguard.so" "$OUT/lib/"
# Every shared library outside glibc that a target loads.
for t in fuzz_model fuzz_loader fuzz_soundness; do
  ldd "$OUT/$t" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' | while read -r lib; do
  [ -f "$OUT/lib/$(basename "$lib")" ] || cp -L "$lib" "$OUT/lib/"
done

# fuzz_model ships configured for the demo model (a naive log(softmax) head) with its
# weights free, as training would move them: the stored ones keep the head finite.
"$build/nanguard" fuzz-config "$root/corpora/demo/model.onnx" --range x=0,1 --weights free --out "$OUT/fuzz_model_config"
cp "$OUT/fuzz_model_config/model.dict" "$OUT/fuzz_model.dict"
max_len=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bytes'])" "$OUT/fuzz_model_config/config.json")
printf '[libfuzzer]\ndict = fuzz_model.dict\nmax_len = %s\nlen_control = 0\n' "$max_len" > "$OUT/fuzz_model.options"
printf '[libfuzzer]\nmax_len = 262144\ntimeout = 25\nmalloc_limit_mb = 2048\n' > "$OUT/fuzz_loader.options"
printf '[libfuzzer]\ntimeout = 25\n' > "$OUT/fuzz_soundness.options"

# Seed corpora: the config's seeds; small ONNX models; one input per node test.
seeds="$WORK/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"
python3 "$root/scripts/fuzz_seeds.py" loader "$seeds/loader" >/dev/null
python3 "$root/scripts/fuzz_seeds.py" soundness "$seeds/soundness" >/dev/null
(cd "$OUT/fuzz_model_config/seeds" && zip -qj "$OUT/fuzz_model_seed_corpus.zip" ./*)
(cd "$seeds/loader" && zip -qj "$OUT/fuzz_loader_seed_corpus.zip" ./*)
(cd "$seeds/soundness" && zip -qj "$OUT/fuzz_soundness_seed_corpus.zip" ./*)
# fuzz_soundness reads the node tests from the runner's disk: ship them.
mkdir -p "$OUT/fuzz_soundness_cases"
cp -r /usr/share/libonnx-testdata/data/node/. "$OUT/fuzz_soundness_cases/"
echo "build.sh: $(ls "$OUT" | tr '\n' ' ')"
