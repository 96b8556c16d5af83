import { Component, type ErrorInfo, type ReactNode } from 'react';

/** A rendering failure shows a sentence and a way back instead of a blank screen. */
export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  override state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  override componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error('the page failed to render', error, info.componentStack);
  }

  override render() {
    if (!this.state.error) return this.props.children;
    return (
      <main id="main" className="auth">
        <h1>Something went wrong</h1>
        <p role="alert">This page failed to show: {this.state.error.message}</p>
        <p>
          <a href="/app/">Back to Sluice</a>
        </p>
      </main>
    );
  }
}
