// I/O worker for bench/io.ts: drives one host's pumps in a blocking epoll loop until stopped.
import { parentPort, workerData } from 'node:worker_threads';
import { runBlocking, Waker } from '../../src/io/poller.js';
import { type HostHandle, hostPumps } from './forward.js';

const { memory, hosts, stop, wakerFd } = workerData as {
  memory: WebAssembly.Memory;
  hosts: HostHandle[];
  stop: Int32Array;
  wakerFd: number;
};
const pumps = hosts.flatMap((h) => hostPumps(h, memory));
parentPort!.postMessage('ready');
const moved = runBlocking(pumps, { stop, waker: new Waker(wakerFd) });
parentPort!.postMessage({ moved });
