// Bakes the commit into dist/build-info.json after `tsc`, for `lilio --version` where the
// tree is not a git checkout (a Docker image): $LILIO_COMMIT, else .git read directly, else null.
import { writeFileSync } from 'node:fs';

const { gitCommit } = await import('../dist/cli/version.js');
const commit = process.env.LILIO_COMMIT || gitCommit() || null;
writeFileSync(new URL('../dist/build-info.json', import.meta.url), `${JSON.stringify({ commit })}\n`);
