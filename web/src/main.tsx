// Start-up: read /config.json, sign in as it says, then render and open the
// freshness stream.

import { render } from "preact";
import { App } from "./App";
import { startAuth } from "./auth";
import { loadConfig } from "./config";
import { startWatchingFreshness } from "./freshness";
import { syncLocation } from "./router";
import "./styles.css";

const root = document.getElementById("app")!;

function fatal(message: string): void {
  render(
    <main id="main">
      <h1>The console could not start</h1>
      <p role="alert">{message}</p>
      <p>
        <button type="button" onClick={() => location.reload()}>
          Reload
        </button>
      </p>
    </main>,
    root,
  );
}

async function start(): Promise<void> {
  let ready: boolean;
  try {
    ready = await startAuth(await loadConfig());
  } catch (error) {
    fatal(error instanceof Error ? error.message : String(error));
    return;
  }
  if (!ready) {
    render(
      <main id="main">
        <p role="status" data-testid="freshness" data-state="signing-in">
          Signing in…
        </p>
      </main>,
      root,
    );
    return;
  }
  syncLocation();
  render(<App />, root);
  startWatchingFreshness();
}

void start();
