// The tunnel endpoint's I/O worker entry: the blocking epoll loop over vtepService's pumps.
import { serveIo } from '../io/worker.js';
import { vtepService } from './service.js';

serveIo(vtepService);
