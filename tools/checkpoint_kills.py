"""Kill a process that saves a 20 MB checkpoint in a loop, N times at random moments; after
each kill the target must load, and the next save must leave no temporary behind.

``PYTHONPATH=. nice -n 5 python tools/checkpoint_kills.py 30`` (about 2 minutes).
"""
import os, random, signal, subprocess, sys, tempfile, time
import shendu
N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
d = tempfile.mkdtemp(); target = os.path.join(d, "ckpt.st")
shendu.save({"w": shendu.zeros(5_000_000), "step": -1}, target)
saver = ("import sys, shendu\nw = shendu.zeros(5_000_000)\nfor step in range(10**6):\n"
         "    shendu.save({'w': w, 'step': step}, sys.argv[1])\n")
rng = random.Random(0); loaded = left = swept = 0
for i in range(N):
    p = subprocess.Popen([sys.executable, "-c", saver, target])
    time.sleep(1.0 + rng.random() * 1.5)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    temps = [n for n in os.listdir(d) if n.endswith(".tmp")]
    left += bool(temps)
    ck = shendu.load(target); loaded += ck["w"].shape == (5_000_000,)
    shendu.save({"w": shendu.zeros(5_000_000), "step": -1}, target)
    swept += not [n for n in os.listdir(d) if n.endswith(".tmp")]
print(f"{N} kills: target loaded after {loaded}; a temporary was left by {left}; "
      f"the next save left none after {swept}")
