// Choosing the cluster store from the daemon's flags: etcd for `--cluster-store etcd://...`,
// otherwise the embedded store in the daemon's state dir (a single host). Callers then see only
// the Store interface, so nothing above this line knows which one it got.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VxError } from '../errors.js';
import { openEmbeddedStore } from './embedded.js';
import { openEtcdStore, parseClusterStore } from './etcd.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /** `etcd://H:P[,H:P...][/prefix]` (Docker 1.9's --cluster-store); absent: the embedded store. */
  clusterStore?: string;
  /** The daemon's state dir; the embedded store lives in `<stateDir>/store`. */
  stateDir: string;
  /** Files of --etcd-cacert / --etcd-cert / --etcd-key; with them, etcd is spoken to over TLS. */
  etcdTls?: { caFile: string; certFile?: string; keyFile?: string };
  /** Deadline of each etcd call (default 2000 ms). */
  requestTimeoutMs?: number;
  /** false: do not wait for etcd to answer before returning (see EtcdStoreOptions.probe). */
  probe?: boolean;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (options.clusterStore === undefined || options.clusterStore === '') {
    if (options.etcdTls)
      throw new VxError('ERR_BAD_CLUSTER_STORE', '--etcd-cacert/--etcd-cert/--etcd-key need --cluster-store');
    return openEmbeddedStore({ dir: join(options.stateDir, 'store') });
  }
  const tls = options.etcdTls;
  const { endpoints, keyPrefix } = parseClusterStore(options.clusterStore, { tls: Boolean(tls) });
  return openEtcdStore({
    endpoints,
    keyPrefix,
    requestTimeoutMs: options.requestTimeoutMs,
    probe: options.probe,
    tls: tls && {
      ca: readPem(tls.caFile, '--etcd-cacert'),
      cert: tls.certFile === undefined ? undefined : readPem(tls.certFile, '--etcd-cert'),
      key: tls.keyFile === undefined ? undefined : readPem(tls.keyFile, '--etcd-key'),
    },
  });
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new VxError('ERR_BAD_CLUSTER_STORE', `${flag} "${file}": ${(e as Error).message}`);
  }
}
