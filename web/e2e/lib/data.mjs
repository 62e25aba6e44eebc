// Data the pages need: tests after the cold one expect a finished run; run
// alone, a test starts one itself and waits for it.
import { cudlyctl } from './services.mjs';

/** Resolves once a collection has finished (starting one if none ever ran). */
export async function collected() {
  let [freshness] = await cudlyctl(['freshness']);
  if (!freshness.lastCollectedAt && !freshness.collecting) await cudlyctl(['refresh']);
  for (let i = 0; i < 600; i += 1) {
    [freshness] = await cudlyctl(['freshness']);
    if (freshness.lastCollectedAt && !freshness.collecting) return freshness;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no collection finished within a minute');
}

/** Whether a table row's text shows this recommendation (account and region). */
export function rowShows(text, rec) {
  return (text.includes(rec.accountId) || text.includes(rec.accountName)) && text.includes(rec.region);
}
