// `vxnet demo`: replays the overlay walkthrough on a fresh lab (being written).
import { VxError } from '../errors.js';
import type { Command } from './args.js';

export const demo: Command = {
  name: 'demo',
  usage: '',
  summary: 'Replay the overlay walkthrough on a fresh lab',
  flags: {},
  async run() {
    throw new VxError('ERR_UNKNOWN_COMMAND', 'vxnet demo is not there yet');
  },
};
