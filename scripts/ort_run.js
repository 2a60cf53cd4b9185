// Runs one ONNX model in ONNX Runtime (onnxruntime-node, CPU) on the inputs of a JSON
// file {name: {dims, type, data}} and prints, per output, its element count and how
// many elements are NaN or infinite: {name: {count, nonfinite}}.
const ort = require('onnxruntime-node');
const fs = require('fs');

const kinds = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array, bool: Uint8Array };

async function main() {
  const [model, feedsPath] = process.argv.slice(2);
  const feeds = JSON.parse(fs.readFileSync(feedsPath, 'utf8'));
  const session = await ort.InferenceSession.create(model);
  const inputs = {};
  for (const [name, f] of Object.entries(feeds)) {
    const Kind = kinds[f.type];
    const data = f.type === 'int64' ? Kind.from(f.data.map(BigInt)) : Kind.from(f.data.map(v => v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v));
    inputs[name] = new ort.Tensor(f.type, data, f.dims);
  }
  const out = await session.run(inputs);
  const result = {};
  for (const [name, t] of Object.entries(out)) {
    let nonfinite = 0;
    if (t.type === 'float32' || t.type === 'float64') for (const v of t.data) if (!Number.isFinite(v)) nonfinite++;
    result[name] = { count: t.data.length, nonfinite };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch(e => { process.stderr.write(`ort: ${e.message.split('\n')[0]}\n`); process.exit(2); });
