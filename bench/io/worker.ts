// I/O worker for bench/io.ts: one or two hosts' copy-forwarder pumps in a blocking epoll loop.
import { serveIo } from '../../src/io/worker.js';
import { type HostHandle, hostPumps } from './forward.js';

serveIo((hosts: HostHandle[], { memory }) => hosts.flatMap((h) => hostPumps(h, memory)));
