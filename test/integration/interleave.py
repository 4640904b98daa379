import os, sys, time
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
res = []
def rd(p):
    with open(p, 'rb') as f: return f.read()
# 1: buffered write, truncate by path, write again, close
p = d + '/i1'
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'abcdef')
os.truncate(p, 2)
os.write(fd, b'Z')
os.close(fd)
res.append(('trunc-path-while-dirty', rd(p)))
# 2: write, utime by path, close -> mtime stays
p = d + '/i2'
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'data')
os.utime(p, ns=(1000000000, 2000000000))
os.close(fd)
res.append(('utime-path-while-dirty', os.stat(p).st_mtime_ns, rd(p)))
# 3: two fds same file, different processes style: write via A, write via B at other offset, close both
p = d + '/i3'
a = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
b = os.open(p, os.O_RDWR)
os.pwrite(a, b'AAAA', 0)
os.pwrite(b, b'BBBB', 8)
os.close(b)
os.pwrite(a, b'aa', 1)
os.close(a)
res.append(('two-fds', rd(p)))
# 4: write, chmod by path, close
p = d + '/i4'
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'x' * 100)
os.chmod(p, 0o600)
os.write(fd, b'y')
os.close(fd)
res.append(('chmod-while-dirty', oct(os.stat(p).st_mode), os.stat(p).st_size))
# 5: write, ftruncate larger, close -> size
p = d + '/i5'
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'q' * 10)
os.ftruncate(fd, 5)
os.pwrite(fd, b'W', 3)
os.close(fd)
res.append(('ftrunc-then-pwrite', rd(p)))
# 6: write via fd, rename over by another file, close; then target holds the new file
p = d + '/i6'; q = d + '/i6b'
with open(q, 'wb') as f: f.write(b'other')
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'first')
os.rename(q, p)
os.write(fd, b'-more')
os.close(fd)
res.append(('rename-over-dirty', rd(p)))
# 7: write, truncate 0 by path (shell > f), write again
p = d + '/i7'
fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b'123456')
fd2 = os.open(p, os.O_WRONLY | os.O_TRUNC); os.close(fd2)
os.close(fd)
res.append(('otrunc-other-fd-while-dirty', rd(p), os.stat(p).st_size))
# 8: big dirty write (multi-chunk), truncate by path smaller, close
p = d + '/i8'
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.write(fd, b'm' * (9 << 20))
os.truncate(p, 1000)
os.close(fd)
res.append(('big-dirty-trunc', os.stat(p).st_size, len(rd(p))))
for r in res: print(r)
