// `dfs events`: the leader's recent cluster events, optionally followed (--follow).
import type { Command } from 'commander';
import { eventsPage } from '../daemon/cluster-ops.js';
import { eventLine, EVENTS_HEADER } from '../daemon/ops-cli.js';
import { CliError, printJson, sleep, withClient } from './common.js';

/** `dfs events`. */
export function registerEvents(program: Command): void {
  program
    .command('events')
    .description("the leader's recent cluster events (node dead, repair, rebalance, drain, scrub errors...), oldest first")
    .option('--limit <n>', 'how many of the latest events to show (1-1000)', '100')
    .option('--follow', 'keep printing new events (polls every second) until Ctrl-C')
    .option('--addr <host:port>', 'a daemon of the cluster (or DFS_ADDR)')
    .option('--data-dir <dir>', 'a dev cluster data dir')
    .option('--json', 'machine-readable output (with --follow: one JSON object per line)')
    .action(async (o: { limit: string; follow?: boolean; addr?: string; dataDir?: string; json?: boolean }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError('--limit must be an integer from 1 to 1000');
      await withClient(o, async (client) => {
        const fetchEvents = (afterSeq: number) => eventsPage(client, afterSeq, limit);
        const first = await fetchEvents(0);
        if (!o.follow) {
          if (o.json) printJson({ leader: first.leader || null, events: first.events });
          else if (first.events.length === 0) process.stdout.write('no events\n');
          else process.stdout.write([EVENTS_HEADER, ...first.events.map(eventLine)].join('\n') + '\n');
          return;
        }
        const show = (events: typeof first.events) => {
          for (const e of events) process.stdout.write(o.json ? JSON.stringify(e) + '\n' : eventLine(e) + '\n');
        };
        if (!o.json) process.stdout.write(EVENTS_HEADER + '\n');
        show(first.events);
        let leader = first.leader;
        let after = first.events.length ? Number(first.events[first.events.length - 1].seq) : 0;
        let lastError = '';
        process.on('SIGINT', () => process.exit(0));
        for (;;) {
          await sleep(1000);
          try {
            const r = await fetchEvents(after);
            lastError = '';
            // Each daemon numbers its own events: a new leader's list starts over.
            if (r.leader && leader && r.leader !== leader) {
              process.stderr.write(`dfs: the leader is now ${r.leader}; its events follow\n`);
              const all = await fetchEvents(0);
              show(all.events);
              after = all.events.length ? Number(all.events[all.events.length - 1].seq) : 0;
            } else {
              show(r.events);
              if (r.events.length) after = Number(r.events[r.events.length - 1].seq);
            }
            if (r.leader) leader = r.leader;
          } catch (e) {
            const msg = (e as Error).message;
            if (msg !== lastError) process.stderr.write(`dfs: ${msg} (retrying every second)\n`);
            lastError = msg;
          }
        }
      });
    });
}
