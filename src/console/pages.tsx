// The console's pages. Each reads the API the CLI's functions answer (src/daemon/cluster-ops.ts)
// and refreshes itself while visible; actions are shown to admins only (the API refuses them
// to read-only anyway).
import { useEffect, useRef, useState } from 'preact/hooks';
import {
  ago,
  ApiError,
  get,
  humanBytes,
  post,
  timeText,
  usePoll,
  type AuditEntry,
  type Browse,
  type ClusterEvent,
  type DirEntry,
  type HistorySample,
  type NodesReport,
  type Overview,
  type ProtectionCell,
  type ProtectionCounts,
  type RaftReport,
  type SessionRow,
  type Role,
  type WhatIf,
} from './api.js';
import { Badge, Bar, Card, ErrorBox, VirtualList } from './ui.js';
import { LineChart } from './chart.js';
import { durationText, repairEtaMs } from './eta.js';

const LIVE_MS = 2000;

/** healthy / degraded / lost, and why. */
export function verdict(o: Overview): { state: 'healthy' | 'degraded' | 'lost'; reason: string } {
  const lost = o.health?.chunks?.lost ?? 0;
  if (lost > 0) return { state: 'lost', reason: o.problems.join('; ') };
  if (!o.healthy) return { state: 'degraded', reason: o.problems.join('; ') };
  return { state: 'healthy', reason: o.chunksKnown ? 'every chunk at its layout, every node up' : 'every node up; chunk health not scanned yet' };
}

function EventRow({ e }: { e: ClusterEvent }) {
  return (
    <>
      <span class="mono" style={{ width: '170px', flex: 'none' }}>{timeText(e.timeMs)}</span>
      <span style={{ width: '130px', flex: 'none' }}>{e.kind}</span>
      <span style={{ width: '90px', flex: 'none' }}>{e.nodeId || '-'}</span>
      <span title={e.message}>{e.message}</span>
    </>
  );
}

export function OverviewPage() {
  const { data: o, error } = usePoll(() => get<Overview>('/api/v1/overview'), LIVE_MS);
  const history = usePoll(() => get<{ samples: HistorySample[] }>('/api/v1/history?seconds=3600'), 10_000);
  const samples = history.data?.samples ?? [];
  if (!o) return <><h1>Overview</h1><ErrorBox error={error} />{error ? null : <p class="muted">loading…</p>}</>;
  const v = verdict(o);
  const h = o.health;
  const used = o.capacity.totalBytes - o.capacity.freeBytes;
  const up = o.nodes.filter((n) => n.state === 'up').length;
  const eta = h ? repairEtaMs(samples, h.repair.queue) : null;
  return (
    <>
      <h1>Overview</h1>
      <ErrorBox error={error} />
      <div class={`health-banner s-${v.state}`} data-testid="health" data-state={v.state}>
        <b>{v.state.toUpperCase()}</b> <span data-testid="health-reason">{v.reason}</span>
      </div>
      <div class="cards">
        <Card label="leader" value={<span data-testid="leader">{o.leader ?? '(none)'}</span>} sub={`term ${o.term}`} />
        <Card label="metadata members" value={<span data-testid="members-up">{`${up}/${o.nodes.length}`}</span>} sub="up" />
        <Card label="chunk servers" value={<span data-testid="nodes-up">{h ? `${h.nodes.up} up` : '?'}</span>} sub={h ? `${h.nodes.suspect} suspect, ${h.nodes.dead} dead, ${h.nodes.draining} draining, ${h.nodes.drained} drained` : o.healthError} />
        <Card label="capacity" value={humanBytes(used)} sub={<><Bar pct={o.capacity.totalBytes ? (100 * used) / o.capacity.totalBytes : null} /> of {humanBytes(o.capacity.totalBytes)}, {humanBytes(o.capacity.availBytes)} free</>} />
        <Card label="files" value={<span data-testid="files">{o.capacity.files}</span>} />
        <Card
          label="chunks"
          testid="chunks"
          value={h?.chunks ? <span data-testid="chunks-total">{h.chunks.total}</span> : 'unknown'}
          sub={h?.chunks ? <><span data-testid="chunks-healthy">{h.chunks.healthy}</span> healthy, <span data-testid="chunks-under">{h.chunks.underProtected}</span> under-protected, <span data-testid="chunks-lost">{h.chunks.lost}</span> lost (scanned {ago(h.chunks.lastScanAgeMs)})</> : 'first scan running'}
        />
        <Card label="repair" value={h ? `${h.repair.queue} queued` : '?'} sub={h ? `${h.repair.done} done, ${humanBytes(h.repair.bytesPerS)}/s${h.repair.queue > 0 ? `; ETA ${eta === null ? 'unknown yet' : durationText(eta)}` : ''}` : null} />
        <Card label="rebalance / drain" value={h ? `${h.rebalance.queue} queued` : '?'} sub={h ? `${h.rebalance.done} moves done, ${humanBytes(h.rebalance.bytesPerS)}/s; ${h.drainRemaining} copies to drain` : null} />
      </div>
      <Charts samples={samples} />
      <h2>Recent events</h2>
      {o.recentEvents === null ? <p class="muted">events unavailable</p> : o.recentEvents.length === 0 ? <p class="muted">no events</p> : <VirtualList items={o.recentEvents} heightPx={240} row={(e) => <EventRow e={e} />} />}
    </>
  );
}

/** The last hour from the daemon's own history (history.ts), refreshed at its 10 s pace. */
function Charts({ samples: s }: { samples: HistorySample[] }) {
  const times = s.map((x) => x.timeMs);
  const col = (k: keyof HistorySample) => s.map((x) => x[k] as number | null);
  return (
    <>
      <h2>Last hour</h2>
      <div class="cards charts" data-testid="charts">
        <LineChart title="capacity used (cluster)" unit="bytes" times={times} series={[{ name: 'used', color: '#3d7be0', values: col('usedBytes') }, { name: 'total', color: '#b9c0cc', values: col('totalBytes') }]} />
        <LineChart title="chunks at risk (cluster)" unit="count" times={times} series={[{ name: 'under-protected', color: '#d9822b', values: col('chunksUnderProtected') }, { name: 'lost', color: '#c23030', values: col('chunksLost') }]} />
        <LineChart title="repair and rebalance (cluster)" unit="bytes/s" times={times} series={[{ name: 'repair', color: '#7a4fd1', values: col('repairBytesPerS') }, { name: 'rebalance', color: '#2b9d8f', values: col('rebalanceBytesPerS') }]} />
        <LineChart title="metadata commits (Raft)" unit="per-s" times={times} series={[{ name: 'commits', color: '#3d7be0', values: col('raftCommitsPerS') }]} />
        <LineChart title="this daemon's I/O" unit="bytes/s" times={times} series={[{ name: 'chunk reads', color: '#2b9d8f', values: col('chunkReadBytesPerS') }, { name: 'mount writes', color: '#d9822b', values: col('mountWriteBytesPerS') }]} />
      </div>
    </>
  );
}

export function NodesPage({ role }: { role: Role }) {
  const nodes = usePoll(() => get<NodesReport>('/api/v1/nodes'), LIVE_MS);
  const raft = usePoll(() => get<RaftReport>('/api/v1/raft'), LIVE_MS);
  const [busy, setBusy] = useState<string | null>(null);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [whatIf, setWhatIf] = useState<WhatIf | null>(null);
  const [whatIfError, setWhatIfError] = useState<ApiError | null>(null);
  const admin = role === 'admin';
  const act = async (label: string, url: string, body: unknown = {}) => {
    setBusy(label);
    setResult(null);
    try {
      const r = await post<{ message: string }>(url, body);
      setResult({ ok: true, text: r.message });
    } catch (e) {
      setResult({ ok: false, text: (e as Error).message });
    } finally {
      setBusy(null);
      nodes.reload();
      raft.reload();
    }
  };
  const roleOf = (id: string) => raft.data?.members.find((m) => m.nodeId === id)?.role ?? '-';
  const runWhatIf = async () => {
    setWhatIf(null);
    setWhatIfError(null);
    try {
      setWhatIf(await get<WhatIf>(`/api/v1/what-if-lost?nodes=${encodeURIComponent([...picked].join(','))}`));
    } catch (e) {
      setWhatIfError(e as ApiError);
    }
  };
  const rows = nodes.data?.nodes ?? [];
  return (
    <>
      <h1>Nodes</h1>
      <ErrorBox error={nodes.error} />
      {result ? <div class={result.ok ? 'notice' : 'error'} data-testid="action-result">{result.text}</div> : null}
      <table data-testid="nodes-table">
        <thead>
          <tr>
            <th />
            <th>node</th>
            <th>state</th>
            <th>zone/rack</th>
            <th>utilization</th>
            <th class="num">capacity</th>
            <th class="num">chunks</th>
            <th class="num">to move</th>
            <th>heartbeat</th>
            <th class="num">corrupt reads</th>
            <th>version</th>
            <th>raft</th>
            {admin ? <th>actions</th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map((n) => (
            <tr key={n.nodeId} data-node={n.nodeId}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`pick ${n.nodeId}`}
                  checked={picked.has(n.nodeId)}
                  onChange={(e) => {
                    const next = new Set(picked);
                    if ((e.currentTarget as HTMLInputElement).checked) next.add(n.nodeId);
                    else next.delete(n.nodeId);
                    setPicked(next);
                  }}
                />
              </td>
              <td>{n.nodeId}<div class="muted">{n.address}</div></td>
              <td data-testid="node-state">
                <Badge state={n.state} /> {n.adminState !== 'active' ? <Badge state={n.adminState} /> : null}
              </td>
              <td>{`${n.zone || '-'}/${n.rack || '-'}`}</td>
              <td><Bar pct={n.utilizationPct} /></td>
              <td class="num">{n.totalBytes ? humanBytes(n.totalBytes) : '-'}</td>
              <td class="num">{n.chunkCount}</td>
              <td class="num" data-testid="to-move">{n.adminState === 'draining' ? (n.toMove ?? '?') : '-'}</td>
              <td>{ago(n.lastHeartbeatAgoMs)}</td>
              <td class="num">{n.corruptReads > 0 ? <Badge state="corrupt" text={String(n.corruptReads)} /> : 0}</td>
              <td>{n.version ?? '-'}</td>
              <td>{roleOf(n.nodeId)}</td>
              {admin ? (
                <td>
                  {n.adminState === 'draining' || n.adminState === 'drained' ? (
                    <button disabled={busy !== null} onClick={() => act('cancel', `/api/v1/nodes/${n.nodeId}/cancel-drain`)}>cancel drain</button>
                  ) : (
                    <button class="danger" disabled={busy !== null} onClick={() => confirm(`Drain ${n.nodeId}? Its copies move to other nodes.`) && act('drain', `/api/v1/nodes/${n.nodeId}/drain`)}>drain</button>
                  )}{' '}
                  {roleOf(n.nodeId) === 'follower' ? (
                    <button disabled={busy !== null} onClick={() => act('transfer', '/api/v1/raft/transfer-leader', { nodeId: n.nodeId })}>make leader</button>
                  ) : null}{' '}
                  {roleOf(n.nodeId) !== '-' ? (
                    <button class="danger" disabled={busy !== null} onClick={() => confirm(`Remove ${n.nodeId} from the metadata group?`) && act('remove', '/api/v1/raft/remove-member', { nodeId: n.nodeId })}>remove member</button>
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      {busy ? <p class="muted">{busy}…</p> : null}
      <h2>What if these nodes were lost?</h2>
      <div class="toolbar">
        <span class="muted">pick nodes in the table</span>
        <button disabled={picked.size === 0} onClick={() => void runWhatIf()} data-testid="what-if">what if {[...picked].join(', ') || '…'} died now</button>
      </div>
      <ErrorBox error={whatIfError} />
      {whatIf ? (
        <div data-testid="what-if-result">
          <p>
            {whatIf.files} files, {whatIf.chunks} chunks: <b>{whatIf.loseData}</b> files would lose data, <b>{whatIf.loseProtection}</b> would lose protection
          </p>
          {whatIf.affected.length ? (
            <VirtualList
              items={whatIf.affected}
              heightPx={Math.min(300, whatIf.affected.length * 28 + 2)}
              row={(f) => (
                <>
                  <Badge state={f.impact === 'lose-data' ? 'lost' : 'under-protected'} text={f.impact === 'lose-data' ? 'loses data' : 'loses protection'} />
                  <span class="mono">{f.path}</span>
                </>
              )}
            />
          ) : null}
        </div>
      ) : null}
    </>
  );
}

export function RaftPage() {
  const { data: r, error } = usePoll(() => get<RaftReport>('/api/v1/raft'), LIVE_MS);
  // Leadership changes seen while this page is open (the daemons keep no history of them yet).
  const timeline = useRef<Array<{ atMs: number; leader: string | null; term: number }>>([]);
  if (r) {
    const last = timeline.current.at(-1);
    if (!last || last.leader !== r.leader || last.term !== r.term) timeline.current.push({ atMs: Date.now(), leader: r.leader, term: r.term });
  }
  return (
    <>
      <h1>Raft</h1>
      <ErrorBox error={error} />
      {r ? (
        <>
          <div class="cards">
            <Card label="term" value={r.term} />
            <Card label="leader" value={<span data-testid="raft-leader">{r.leader ?? '(none)'}</span>} sub={`answered by ${r.nodeId} (${r.role})`} />
            <Card label="commit" value={r.commit} />
            <Card label="applied" value={r.applied} sub={`last index ${r.lastIndex}`} />
          </div>
          <h2>Members</h2>
          <table>
            <thead>
              <tr><th>node</th><th>address</th><th>role</th><th class="num">match</th><th class="num">lag</th><th>progress</th><th>active</th></tr>
            </thead>
            <tbody>
              {r.members.map((m) => (
                <tr key={m.nodeId}>
                  <td>{m.nodeId}</td>
                  <td class="mono">{m.address}</td>
                  <td>{m.role}</td>
                  <td class="num">{m.match}</td>
                  <td class="num">{m.lag}</td>
                  <td>{m.state || '-'}</td>
                  <td>{m.role === 'leader' ? '-' : m.active ? <Badge state="up" text="yes" /> : <Badge state="dead" text="no" />}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Leadership (since this page opened)</h2>
          <table>
            <tbody>
              {timeline.current.map((t, i) => (
                <tr key={i}><td class="mono">{timeText(t.atMs)}</td><td>term {t.term}</td><td>{t.leader ?? '(no leader)'}</td></tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </>
  );
}

/** At most this many events are held by the page (the daemon keeps 1000). */
const EVENTS_KEPT = 5000;

export function EventsPage() {
  const [events, setEvents] = useState<ClusterEvent[]>([]);
  const [state, setState] = useState<'connecting' | 'live' | 'retrying'>('connecting');
  const [filter, setFilter] = useState('');
  const [kind, setKind] = useState('');
  useEffect(() => {
    const es = new EventSource('/api/v1/events/stream?backlog=500');
    let buf: ClusterEvent[] = [];
    // A stream that joins while the daemon's shared feed runs may see an event in both its
    // backlog and the feed: keep each sequence number once (per leader: a reset starts over).
    let maxSeq = 0;
    const flush = window.setInterval(() => {
      if (buf.length === 0) return;
      const add = buf;
      buf = [];
      setEvents((old) => [...add.reverse(), ...old].slice(0, EVENTS_KEPT));
    }, 250);
    let leader: string | null | undefined;
    es.addEventListener('hello', (m) => {
      // A reconnect to a new leader: its events are numbered anew.
      const now = (JSON.parse((m as MessageEvent<string>).data) as { leader: string | null }).leader;
      if (leader !== undefined && now !== leader) {
        buf = [];
        maxSeq = 0;
        setEvents([]);
      }
      leader = now;
      setState('live');
    });
    es.addEventListener('event', (m) => {
      const e = JSON.parse((m as MessageEvent<string>).data) as ClusterEvent;
      if (e.seq <= maxSeq) return;
      maxSeq = e.seq;
      buf.push(e);
    });
    es.addEventListener('reset', (m) => {
      leader = (JSON.parse((m as MessageEvent<string>).data) as { leader: string | null }).leader;
      buf = [];
      maxSeq = 0;
      setEvents([]);
    });
    es.onerror = () => setState('retrying');
    return () => {
      es.close();
      window.clearInterval(flush);
    };
  }, []);
  const f = filter.trim().toLowerCase();
  const kinds = [...new Set(events.map((e) => e.kind))].sort();
  const shown = events.filter((e) => (!kind || e.kind === kind) && (!f || `${e.kind} ${e.nodeId} ${e.message}`.toLowerCase().includes(f)));
  return (
    <>
      <h1>Events</h1>
      <div class="toolbar">
        <Badge state={state === 'live' ? 'up' : 'suspect'} text={state} />
        <select aria-label="kind" value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">every kind</option>
          {kinds.map((k) => <option key={k} value={k}>{k}</option>)}
        </select>
        <input placeholder="filter (node, text)" value={filter} onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} />
        <span class="muted" data-testid="events-count">{shown.length} events</span>
      </div>
      <VirtualList items={shown} heightPx={560} row={(e) => <EventRow e={e} />} testid="events-list" />
    </>
  );
}

export function ProtectionPage() {
  const { data, error } = usePoll(() => get<ProtectionCounts>('/api/v1/protection'), 10_000);
  const [cell, setCell] = useState<ProtectionCell | null>(null);
  const [paths, setPaths] = useState<{ total: number; chunks: number; truncated: boolean; paths: string[] } | null>(null);
  const [pathsError, setPathsError] = useState<ApiError | null>(null);
  const load = async (c: ProtectionCell, offset: number) => {
    try {
      const r = await get<{ total: number; chunks: number; truncated: boolean; paths: string[] }>(`/api/v1/protection/files?scheme=${encodeURIComponent(c.scheme)}&want=${c.want}&valid=${c.valid}&offset=${offset}&limit=500`);
      setPaths((old) => ({ ...r, paths: offset === 0 || !old ? r.paths : [...old.paths, ...r.paths] }));
    } catch (e) {
      setPathsError(e as ApiError);
    }
  };
  const rows = new Map<string, ProtectionCell[]>();
  let maxValid = 0;
  for (const c of data?.cells ?? []) {
    const k = `${c.scheme}|${c.want}`;
    rows.set(k, [...(rows.get(k) ?? []), c]);
    maxValid = Math.max(maxValid, c.valid, c.want);
  }
  const cols = Array.from({ length: maxValid + 1 }, (_, i) => i);
  return (
    <>
      <h1>Protection matrix</h1>
      <p class="muted">Chunks by the copies their layout wants (rows) and the copies that can be read (columns), from the leader's last scan; click a cell for its files.</p>
      <ErrorBox error={error} />
      {data ? (
        <>
          <p>{data.scanned ? `${data.chunks} chunks, scanned ${ago(data.lastScanAgeMs)}` : 'the leader has not finished its first scan yet'}</p>
          <table class="matrix" data-testid="matrix">
            <thead>
              <tr><th>layout</th><th>wanted</th>{cols.map((v) => <th class="num" key={v}>{v} valid</th>)}</tr>
            </thead>
            <tbody>
              {[...rows.entries()].map(([k, cells]) => (
                <tr key={k}>
                  <td>{cells[0].scheme}</td>
                  <td class="num">{cells[0].want}</td>
                  {cols.map((v) => {
                    const c = cells.find((x) => x.valid === v);
                    return c ? (
                      <td key={v} class={`cell s-${c.state}`} data-cell={`${c.scheme}/${c.want}/${c.valid}`} onClick={() => { setCell(c); setPaths(null); setPathsError(null); void load(c, 0); }}>
                        {c.chunks}
                      </td>
                    ) : (
                      <td key={v} class="cell empty">·</td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
          {cell ? (
            <>
              <h2>{cell.scheme}, {cell.want} wanted, {cell.valid} valid: {cell.chunks} chunks{paths ? `, ${paths.total}${paths.truncated ? '+' : ''} files` : ''}</h2>
              <ErrorBox error={pathsError} />
              {paths ? (
                <VirtualList
                  items={paths.paths}
                  heightPx={Math.min(400, paths.paths.length * 28 + 2)}
                  testid="cell-files"
                  row={(p) => <a class="mono" href={`#/browse?path=${encodeURIComponent(p)}`}>{p}</a>}
                  onEnd={() => { if (paths.paths.length < paths.total) void load(cell, paths.paths.length); }}
                />
              ) : pathsError ? null : <p class="muted">walking the namespace for this cell's files…</p>}
            </>
          ) : null}
        </>
      ) : null}
    </>
  );
}

export function BrowsePage({ path, role }: { path: string; role: Role }) {
  const [dir, setDir] = useState<Browse | null>(null);
  const [entries, setEntries] = useState<DirEntry[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const [layout, setLayout] = useState('');
  const [layoutResult, setLayoutResult] = useState<{ ok: boolean; text: string } | null>(null);
  const loading = useRef(false);
  const loadPage = async (after: string | null) => {
    if (loading.current) return;
    loading.current = true;
    try {
      const r = await get<Browse>(`/api/v1/browse?path=${encodeURIComponent(path)}&limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      setDir(r);
      setEntries((old) => (after ? [...old, ...(r.entries ?? [])] : (r.entries ?? [])));
      setError(null);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      loading.current = false;
    }
  };
  useEffect(() => {
    setDir(null);
    setEntries([]);
    setLayoutResult(null);
    void loadPage(null);
  }, [path]);
  const parts = path.split('/').filter(Boolean);
  const applyLayout = async () => {
    const m = /^\s*(?:(\d+)|(\d+\+\d+))\s*$/.exec(layout);
    if (!m) {
      setLayoutResult({ ok: false, text: "a layout is a number of replicas (3) or k+m (4+2)" });
      return;
    }
    try {
      const r = await post<{ message: string }>('/api/v1/layout', m[1] ? { path, replicas: Number(m[1]) } : { path, ec: m[2] });
      setLayoutResult({ ok: true, text: r.message });
      void loadPage(null);
    } catch (e) {
      setLayoutResult({ ok: false, text: (e as Error).message });
    }
  };
  return (
    <>
      <h1>Browse</h1>
      <div class="toolbar mono" data-testid="breadcrumb">
        <a href="#/browse?path=%2F">/</a>
        {parts.map((p, i) => (
          <span key={i}>
            <a href={`#/browse?path=${encodeURIComponent('/' + parts.slice(0, i + 1).join('/'))}`}>{p}</a>/
          </span>
        ))}
      </div>
      <ErrorBox error={error} />
      {dir?.type === 'directory' ? (
        <>
          <div class="toolbar">
            <span>layout <b data-testid="dir-layout">{dir.layoutText}</b> (inherited by new entries)</span>
            {role === 'admin' ? (
              <>
                <input placeholder="3 or 4+2" value={layout} size={8} onInput={(e) => setLayout((e.currentTarget as HTMLInputElement).value)} />
                <button onClick={() => void applyLayout()}>set layout</button>
              </>
            ) : null}
            <span class="muted">{entries.length}{dir.next ? '+' : ''} entries</span>
          </div>
          {layoutResult ? <div class={layoutResult.ok ? 'notice' : 'error'}>{layoutResult.text}</div> : null}
          <VirtualList
            items={entries}
            heightPx={520}
            testid="dir-list"
            onEnd={() => { if (dir.next) void loadPage(dir.next); }}
            row={(e) => (
              <>
                <span style={{ width: '24px', flex: 'none' }}>{e.type === 'directory' ? '📁' : e.type === 'file' ? '📄' : '🔗'}</span>
                <a class="mono" style={{ flex: '1' }} href={`#/browse?path=${encodeURIComponent((path === '/' ? '' : path) + '/' + e.name)}`}>{e.name}</a>
                <span style={{ width: '90px', flex: 'none', textAlign: 'right' }}>{e.type === 'file' ? humanBytes(e.sizeBytes) : ''}</span>
                <span style={{ width: '100px', flex: 'none' }} class="muted">{e.layout}</span>
                <span style={{ width: '170px', flex: 'none' }} class="mono">{e.mtimeMs ? timeText(e.mtimeMs) : ''}</span>
              </>
            )}
          />
        </>
      ) : dir?.type === 'file' && dir.info ? (
        <div data-testid="file-info">
          <p>
            {humanBytes(dir.sizeBytes)} ({dir.sizeBytes} bytes), layout <b>{dir.layoutText}</b>, chunk size {humanBytes(dir.info.chunkSizeBytes)};{' '}
            {dir.info.inline ? 'data inline in the namespace' : `${dir.info.chunks.length} chunks${dir.info.holes ? ` (+${dir.info.holes} holes)` : ''}, `}
            {dir.info.inline ? null : dir.info.unhealthyCopies === 0 ? <Badge state="ok" text="all copies ok" /> : <Badge state="lost" text={`${dir.info.unhealthyCopies} copies not ok`} />}
          </p>
          {dir.info.chunks.length ? (
            <table data-testid="chunks-table">
              <thead><tr><th class="num">chunk</th><th>id</th><th class="num">size</th><th>copy</th><th>node</th><th>address</th><th>health</th></tr></thead>
              <tbody>
                {dir.info.chunks.flatMap((ch) =>
                  ch.copies.map((c, i) => (
                    <tr key={`${ch.index}-${i}`}>
                      <td class="num">{i === 0 ? ch.index : ''}</td>
                      <td class="mono">{i === 0 ? ch.chunkIdHex : ''}</td>
                      <td class="num">{i === 0 ? humanBytes(ch.sizeBytes) : ''}</td>
                      <td>{c.kind === 'shard' && ch.ec ? `${c.number < ch.ec.k ? 'data' : 'parity'} shard ${c.number}` : `${c.kind} ${c.number}`}</td>
                      <td>{c.nodeId || '-'}</td>
                      <td class="mono">{c.address ?? '?'}</td>
                      <td><Badge state={c.health} />{c.detail && c.health !== 'ok' ? <span class="muted"> {c.detail}</span> : null}</td>
                    </tr>
                  )),
                )}
              </tbody>
            </table>
          ) : null}
        </div>
      ) : dir ? (
        <p>{dir.path}: a {dir.type}</p>
      ) : null}
    </>
  );
}

export function AuditPage() {
  const { data, error } = usePoll(() => get<{ entries: AuditEntry[] }>('/api/v1/audit?limit=1000'), 5000);
  return (
    <>
      <h1>Audit</h1>
      <p class="muted">Every action and sign-in this daemon received (newest first); the full log is audit.log in its data dir.</p>
      <ErrorBox error={error} />
      <table data-testid="audit-table">
        <thead><tr><th>time</th><th>who</th><th>action</th><th>target</th><th>result</th><th>message</th></tr></thead>
        <tbody>
          {(data?.entries ?? []).map((a, i) => (
            <tr key={i}>
              <td class="mono">{timeText(a.timeMs)}</td>
              <td>{a.role} <span class="muted">{a.via} {a.remote}</span></td>
              <td>{a.action}</td>
              <td>{a.target}</td>
              <td><Badge state={a.result === 'ok' ? 'ok' : 'error'} text={a.result === 'ok' ? 'ok' : a.code ?? 'error'} /></td>
              <td>{a.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function ClientsPage() {
  const { data, error } = usePoll(() => get<{ leader: string | null; sessions: SessionRow[] }>('/api/v1/clients'), LIVE_MS);
  return (
    <>
      <h1>Clients</h1>
      <p class="muted">The mounts' sessions as the meta leader ({data?.leader ?? '?'}) knows them.</p>
      <ErrorBox error={error} />
      <table data-testid="clients-table">
        <thead><tr><th>session</th><th>connected</th><th class="num">leases</th><th>renewed</th></tr></thead>
        <tbody>
          {(data?.sessions ?? []).map((s) => (
            <tr key={s.session} data-session={s.session}>
              <td class="mono">{s.session}</td>
              <td>{s.streams > 0 ? <Badge state="up" text="connected" /> : <Badge state="unknown" text="no stream" />}</td>
              <td class="num">{s.leases}</td>
              <td>{ago(s.lastRenewalAgoMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
