// The playground ward serves on `/`: GraphiQL with its subscription endpoint on the same
// host, and — only when ward says so (the embedded demo, or WARD_PLAYGROUND_DEMO) — the demo
// people's Authorization headers and an example tab per area. ward writes its settings into
// <script id="ward-playground-config" type="application/json"> in the page; nothing here
// reaches any origin but ward's own.

import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { useEditorContext } from '@graphiql/react';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import './playground.css';

function readConfig() {
  const element = document.getElementById('ward-playground-config');
  try {
    return JSON.parse(element?.textContent ?? '{}');
  } catch {
    return {};
  }
}

const config = readConfig();
const endpoint = config.endpoint ?? '/graphql';
const wsScheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
const subscriptionUrl = `${wsScheme}//${window.location.host}${config.subscriptionPath ?? '/graphql/ws'}`;

// HTTP for queries and mutations; the editor's headers travel in `connection_init` for
// subscriptions, where ward reads `Authorization`.
const fetcher = createGraphiQLFetcher({ url: endpoint, subscriptionUrl });

const headersFor = (person) => JSON.stringify({ Authorization: `Bearer ${person.token}` }, null, 2);

function DemoPeople() {
  const editor = useEditorContext({ nonNull: true });
  const choose = (person) => {
    const headers = headersFor(person);
    editor.headerEditor?.setValue(headers);
    editor.updateActiveTabValues({ headers });
  };
  return (
    <div className="ward-demo">
      <div className="graphiql-doc-explorer-title">Demo people</div>
      <p>
        Sets the <code>Authorization</code> header of the current tab. Subscriptions send it in{' '}
        <code>connection_init</code>.
      </p>
      <ul>
        {config.demo.people.map((person) => (
          <li key={person.email}>
            <button
              type="button"
              className="graphiql-button ward-person"
              data-email={person.email}
              onClick={() => choose(person)}
            >
              <strong>{person.email}</strong>
              <span>{person.role}</span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function PeopleIcon() {
  return (
    <svg height="1em" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="1.5" aria-hidden="true">
      <circle cx="9" cy="8" r="3.5" />
      <path d="M2.5 20c0-3.6 2.9-6.5 6.5-6.5s6.5 2.9 6.5 6.5" />
      <circle cx="17" cy="9" r="2.5" />
      <path d="M16 13.6c3.1-.4 5.5 2 5.5 5.4" />
    </svg>
  );
}

const props = { fetcher };
if (config.demo) {
  const plugin = { title: 'Demo people', icon: PeopleIcon, content: DemoPeople };
  const preset = config.demo.people.find((p) => p.email === config.demo.defaultPerson) ?? config.demo.people[0];
  props.plugins = [plugin];
  props.defaultHeaders = preset ? headersFor(preset) : undefined;
  props.defaultTabs = config.demo.examples.map((example) => ({
    query: example.query,
    variables: example.variables ?? null,
    headers: preset ? headersFor(preset) : null,
  }));
}

createRoot(document.getElementById('graphiql')).render(<GraphiQL {...props} />);

// Open the demo people's pane once GraphiQL is up. (GraphiQL 4's `visiblePlugin` prop selects
// the plugin but leaves its pane collapsed on a first visit; its own button does both.)
if (config.demo) {
  const started = Date.now();
  const open = () => {
    const button = document.querySelector('.graphiql-sidebar button[aria-label="Show Demo people"]');
    if (button) button.click();
    else if (Date.now() - started < 10_000) requestAnimationFrame(open);
  };
  requestAnimationFrame(open);
}
