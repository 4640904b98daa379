import { describe, expect, it } from 'vitest';
import { parseEcScheme } from '../../../src/chunks/ec.js';
import { innermostDfsMount, InspectError, layoutText, parseFsname, parseLayoutOptions } from '../../../src/daemon/inspect.js';

describe('inspect helpers', () => {
  it('parses the daemon fsname', () => {
    expect(parseFsname('dfs:n1@127.0.0.1:7400')).toEqual({ nodeId: 'n1', address: '127.0.0.1:7400' });
    expect(parseFsname('dfs:client@[::1]:7400')).toEqual({ nodeId: 'client', address: '[::1]:7400' });
    expect(parseFsname('dfs:n1')).toBeNull(); // mounted by an older daemon
    expect(parseFsname('/dev/sda1')).toBeNull();
  });

  it('finds the innermost mount holding a path, and only a dfs one', () => {
    const m = (mountpoint: string, fstype: string) => ({ mountpoint, fstype, source: 'x' });
    const mounts = [m('/', 'ext4'), m('/mnt/dfs', 'fuse.dfs'), m('/mnt/dfs2', 'fuse.dfs'), m('/mnt/dfs/in/tmp', 'tmpfs'), m('/mnt/dfs/in/tmp/d', 'fuse.dfs')];
    expect(innermostDfsMount(mounts, '/mnt/dfs')?.mountpoint).toBe('/mnt/dfs');
    expect(innermostDfsMount(mounts, '/mnt/dfs/a/b')?.mountpoint).toBe('/mnt/dfs');
    expect(innermostDfsMount(mounts, '/mnt/dfs2/a')?.mountpoint).toBe('/mnt/dfs2');
    expect(innermostDfsMount(mounts, '/mnt/dfsx')).toBeNull();
    expect(innermostDfsMount(mounts, '/mnt/dfs/in/tmp/x')).toBeNull();
    expect(innermostDfsMount(mounts, '/mnt/dfs/in/tmp/d/x')?.mountpoint).toBe('/mnt/dfs/in/tmp/d');
    // A later mount on the same point is the one on top.
    expect(innermostDfsMount([...mounts, m('/mnt/dfs', 'tmpfs')], '/mnt/dfs/a')).toBeNull();
  });

  it('parses --replicas / --ec within the data path limits', () => {
    const parse = (o: { replicas?: string; ec?: string }) => parseLayoutOptions(o, parseEcScheme);
    expect(parse({ replicas: '2' })).toEqual({ kind: 'replicas', replicas: 2 });
    expect(parse({ ec: '6+3' })).toEqual({ kind: 'ec', k: 6, m: 3 });
    for (const bad of [{}, { replicas: '0' }, { replicas: '17' }, { replicas: '2.5' }, { replicas: '1e1' }, { ec: '6+x' }, { ec: '25+1' }, { ec: '4+7' }, { ec: '4+0' }, { replicas: '2', ec: '4+2' }]) {
      expect(() => parse(bad), JSON.stringify(bad)).toThrow(InspectError);
    }
    expect(layoutText({ kind: 'ec', k: 4, m: 2 })).toBe('ec 4+2');
    expect(layoutText({ kind: 'replicas', replicas: 3 })).toBe('replicas 3');
  });
});
