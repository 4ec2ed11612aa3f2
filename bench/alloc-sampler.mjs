// Preloaded (`node --import ./bench/alloc-sampler.mjs`) into a server by bench/allocations.ts: the
// first SIGUSR2 starts V8's sampling heap profiler, counting objects that the GC has collected
// since (so garbage shows, not only what stays alive); the second writes the profile to
// $TW_ALLOC_OUT and stops sampling.
import inspector from 'node:inspector';
import { writeFileSync } from 'node:fs';

const session = new inspector.Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
let sampling = false;
process.on('SIGUSR2', () => {
  const step = sampling
    ? post('HeapProfiler.stopSampling').then(({ profile }) => writeFileSync(process.env.TW_ALLOC_OUT, JSON.stringify(profile)))
    : post('HeapProfiler.enable').then(() =>
        post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }),
      );
  sampling = !sampling;
  step.catch((err) => process.stderr.write(`alloc-sampler: ${err}\n`));
});
