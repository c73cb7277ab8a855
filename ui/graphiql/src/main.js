// The eventgate GraphiQL page: a bearer-token field above GraphiQL. The token is kept in this
// browser's localStorage and sent as the Authorization header over HTTP and in the
// connection_init payload over graphql-ws (DESIGN.md §4); it never goes into a URL.
//
// The page's Content-Security-Policy allows no inline script, so the settings come from data
// attributes of #graphiql, written by the Go handler. Inline <style> elements need the nonce of
// this response, which the handler also puts on the stylesheet link.
import { setNonce } from 'get-nonce';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import 'graphiql/style.css';
import './page.css';

// GraphiQL's dialogs (Radix, through react-style-singleton) add <style> elements: they take the
// nonce from get-nonce. The nonce property, unlike the attribute, is readable after the browser
// hides it.
setNonce(document.getElementById('eg-style')?.nonce || '');

const mount = document.getElementById('graphiql');
const endpoint = mount.dataset.endpoint || '/query';
const storageKey = mount.dataset.storageKey || 'eventgate.graphiql.token';

// HTTP and WebSocket URLs of the same endpoint, on this page's host unless the endpoint is
// absolute.
const httpURL = new URL(endpoint, window.location.href);
const wsURL = new URL(httpURL.href);
wsURL.protocol = httpURL.protocol === 'https:' ? 'wss:' : 'ws:';

const form = document.getElementById('eg-auth');
const input = document.getElementById('eg-token');
const status = document.getElementById('eg-status');

function readToken() {
  try {
    return window.localStorage.getItem(storageKey) || '';
  } catch {
    return ''; // storage disabled: the token lives for this page only
  }
}

function saveToken(token) {
  try {
    if (token) window.localStorage.setItem(storageKey, token);
    else window.localStorage.removeItem(storageKey);
  } catch {
    // storage disabled: the token lives for this page only
  }
}

// bearer accepts a pasted "Bearer egt_…" as well as the bare token.
function bearer(token) {
  const bare = token.trim().replace(/^bearer\s+/i, '');
  return bare ? `Bearer ${bare}` : '';
}

let wsClient = null;

// makeFetcher builds a fetcher for one token. The previous WebSocket is closed first: its
// connection was authenticated with the previous token.
function makeFetcher(token) {
  if (wsClient) {
    wsClient.dispose();
    wsClient = null;
  }
  const auth = bearer(token);
  const params = auth ? { Authorization: auth } : {};
  wsClient = createClient({
    url: wsURL.href,
    connectionParams: params,
    lazy: true,
    retryAttempts: 3,
  });
  return createGraphiQLFetcher({ url: httpURL.href, headers: params, wsClient });
}

const root = createRoot(mount);

function render() {
  const token = input.value;
  status.textContent = bearer(token) ? 'token set' : 'no token';
  root.render(
    createElement(GraphiQL, {
      fetcher: makeFetcher(token),
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      // Headers typed into GraphiQL's own editor are not persisted: they may hold tokens.
      shouldPersistHeaders: false,
    }),
  );
}

form.addEventListener('submit', (ev) => ev.preventDefault());

input.value = readToken();
let pending = 0;
input.addEventListener('input', () => {
  saveToken(input.value.trim());
  // Re-create the fetcher (and the WebSocket) once typing pauses, not per keystroke.
  clearTimeout(pending);
  pending = setTimeout(render, 400);
});

document.getElementById('eg-show').addEventListener('click', (ev) => {
  const hidden = input.type === 'password';
  input.type = hidden ? 'text' : 'password';
  ev.currentTarget.textContent = hidden ? 'Hide' : 'Show';
});

document.getElementById('eg-clear').addEventListener('click', () => {
  input.value = '';
  saveToken('');
  render();
});

render();
