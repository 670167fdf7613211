"""Headless Chromium over the DevTools protocol (websocket-client): what the docs tests, the serve tests and the deploy tutorial share.

Needs Debian's `chromium` and PyPI's `websocket-client`."""
import base64, json, socket, subprocess, time, urllib.request
from pathlib import Path

def free_port():
    "A free TCP port on 127.0.0.1"
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class Chromium:
    "Headless Chromium driven over the DevTools protocol: navigate, evaluate JavaScript, take screenshots"
    def __init__(self, binary, profile):
        import websocket
        port, self.log = free_port(), Path(profile)/'chromium.log'
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen([binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                                          '--hide-scrollbars', f'--remote-debugging-port={port}', f'--user-data-dir={profile}',
                                          '--window-size=1440,1000', 'about:blank'], stdout=log, stderr=log)
        try:
            targets = self._poll(f'http://127.0.0.1:{port}/json/list')
            ws = next(t['webSocketDebuggerUrl'] for t in targets if t['type'] == 'page')
            self.ws, self.n = websocket.create_connection(ws, timeout=60, suppress_origin=True), 0
            self.send('Page.enable')
        except Exception:
            self.proc.kill(); self.proc.wait(10)
            raise

    def _poll(self, url, timeout=60):
        end = time.time() + timeout
        while True:
            try: return json.loads(urllib.request.urlopen(url, timeout=5).read())
            except OSError:
                if time.time() > end or self.proc.poll() is not None:
                    raise RuntimeError(f'chromium did not start:\n{self.log.read_text()[-2000:]}')
                time.sleep(0.2)

    def send(self, method, wait_event=None, **params):
        "Call DevTools `method`; return its result (after event `wait_event` if given)"
        self.n += 1; i = self.n
        self.ws.send(json.dumps(dict(id=i, method=method, params=params)))
        res, seen = None, wait_event is None
        while res is None or not seen:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == i:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                res = msg['result']
            elif msg.get('method') == wait_event: seen = True
        return res

    def goto(self, url):
        self.send('Page.navigate', wait_event='Page.loadEventFired', url=url)

    def js(self, expr):
        r = self.send('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(r['exceptionDetails'])
        return r['result'].get('value')

    def wait_for(self, expr, timeout=60):
        "Poll the JavaScript expression `expr` until it is truthy; return its value"
        end = time.time() + timeout
        while not (value := self.js(expr)):
            if time.time() > end: raise TimeoutError(f'{expr} still false after {timeout}s')
            time.sleep(0.1)
        return value

    def set_files(self, selector, files):
        "Choose `files` in the file input `selector`, as a person does in the file dialog (the page gets its `change` event)"
        doc = self.send('DOM.getDocument')['root']['nodeId']
        node = self.send('DOM.querySelector', nodeId=doc, selector=selector)['nodeId']
        self.send('DOM.setFileInputFiles', nodeId=node, files=[str(f) for f in files])

    def screenshot(self, path):
        Path(path).write_bytes(base64.b64decode(self.send('Page.captureScreenshot', format='png')['data']))

    def close(self):
        self.ws.close(); self.proc.terminate(); self.proc.wait(10)
