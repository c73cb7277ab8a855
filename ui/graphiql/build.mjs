// Bundles GraphiQL and the page script into server/graphiql/assets, which the Go binary
// embeds: the page then loads nothing from any other host. Run through `make ui`.
import * as esbuild from 'esbuild';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const outdir = '../../server/graphiql/assets';

// Stale outputs would otherwise stay embedded in the binary.
for (const name of readdirSync(outdir)) {
  if (name.startsWith('graphiql.')) rmSync(join(outdir, name));
}

await esbuild.build({
  entryPoints: { graphiql: 'src/main.js' },
  outdir,
  bundle: true,
  minify: true,
  // One classic script: no module loader and no chunks to request.
  format: 'iife',
  // The browsers GraphiQL 4 supports; no transpiling beyond that.
  target: ['chrome111', 'firefox115', 'safari16.4', 'edge111'],
  define: { 'process.env.NODE_ENV': '"production"' },
  // Licence texts of the bundled packages go to graphiql.js.LEGAL.txt / graphiql.css.LEGAL.txt.
  legalComments: 'external',
  // Reproducible output: the same lock file gives byte-identical assets.
  sourcemap: false,
  logLevel: 'warning',
});

for (const name of readdirSync(outdir).sort()) {
  const kib = (statSync(join(outdir, name)).size / 1024).toFixed(0);
  console.log(`${join(outdir, name)}\t${kib} KiB`);
}
