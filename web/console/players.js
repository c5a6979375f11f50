// Players: the vendored libraries (loaded only when chosen) and the
// browser's own <video src>, behind one attach/destroy interface.

export const players = {
  hlsjs: { label: 'hls.js', src: 'vendor/hls.js/hls.min.js', global: 'Hls', protocols: ['HLS_FMP4', 'HLS_TS'] },
  shaka: { label: 'Shaka Player', src: 'vendor/shaka-player/shaka-player.compiled.js', global: 'shaka', protocols: ['HLS_FMP4', 'HLS_TS', 'DASH'] },
  dashjs: { label: 'dash.js', src: 'vendor/dashjs/dash.all.min.js', global: 'dashjs', protocols: ['DASH'] },
  native: { label: 'native <video>', protocols: ['HLS_FMP4', 'HLS_TS'] },
};

const loading = new Map();

/** loadLibrary adds a player's script once and resolves to its global. */
export function loadLibrary(name) {
  const p = players[name];
  if (!p.src) return Promise.resolve(null);
  if (window[p.global]) return Promise.resolve(window[p.global]);
  if (!loading.has(name)) {
    loading.set(name, new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = new URL(p.src, import.meta.url).href;
      s.onload = () => (window[p.global] ? resolve(window[p.global]) : reject(new Error(`${p.label} did not load`)));
      s.onerror = () => {
        loading.delete(name);
        reject(new Error(`cannot load ${p.label} from ${s.src}`));
      };
      document.head.append(s);
    }));
  }
  return loading.get(name);
}

/**
 * attach plays url in video with the named player. onError gets fatal
 * errors as {source, message}. Returns {destroy(), version, date(), seek(s)}
 * where date() is the wall-clock time shown (ms) when the player knows it
 * and seek goes to a presentation time in seconds.
 */
export async function attach(name, video, url, onError) {
  const lib = await loadLibrary(name);
  switch (name) {
    case 'hlsjs': {
      if (!lib.isSupported()) throw new Error('hls.js: this browser has no Media Source Extensions');
      const hls = new lib({ enableWorker: true });
      hls.on(lib.Events.ERROR, (_, d) => {
        if (d.fatal) onError({ source: 'hls.js', message: `${d.type}: ${d.details}${d.response ? ` (HTTP ${d.response.code})` : ''}`, url: d.url || (d.frag && d.frag.url) });
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      return { destroy: () => hls.destroy(), version: lib.version, date: () => (hls.playingDate ? hls.playingDate.getTime() : null), seek: (t) => { video.currentTime = t; }, impl: hls };
    }
    case 'shaka': {
      lib.polyfill.installAll();
      if (!lib.Player.isBrowserSupported()) throw new Error('Shaka Player: browser not supported');
      const p = new lib.Player();
      p.addEventListener('error', (e) => {
        if (e.detail.severity === 2) onError({ source: 'Shaka', message: `error ${e.detail.code} (category ${e.detail.category})` });
      });
      await p.attach(video);
      p.load(url).catch((e) => onError({ source: 'Shaka', message: `load failed: error ${e.code || ''} ${e.message || ''}`.trim() }));
      return {
        destroy: () => p.destroy(), version: lib.Player.version, impl: p, seek: (t) => { video.currentTime = t; },
        date: () => {
          const d = p.getPlayheadTimeAsDate && p.getPlayheadTimeAsDate();
          return d && Number.isFinite(d.getTime()) && d.getTime() > 1e12 ? d.getTime() : null;
        },
      };
    }
    case 'dashjs': {
      const p = lib.MediaPlayer().create();
      const nonFatal = new Set([16, 21, 33]);
      p.on(lib.MediaPlayer.events.ERROR, (e) => {
        const err = e.error || {};
        if (!nonFatal.has(err.code)) onError({ source: 'dash.js', message: `error ${err.code}: ${err.message || ''}` });
      });
      p.on(lib.MediaPlayer.events.PLAYBACK_ERROR, (e) => onError({ source: 'dash.js', message: String(e.error && e.error.message || e.error || 'playback error') }));
      p.initialize(video, url, true);
      // dash.js seeks across Periods itself (the media element's duration is the current Period's).
      return { destroy: () => p.reset(), version: p.getVersion(), date: () => null, seek: (t) => p.seek(t), impl: p };
    }
    default: {
      video.src = url;
      return {
        destroy: () => {
          video.removeAttribute('src');
          video.load();
        },
        seek: (t) => { video.currentTime = t; },
        version: navigator.userAgent.match(/Chrom(e|ium)\/[\d.]+|Version\/[\d.]+ Safari/)?.[0] || 'browser',
        date: () => {
          const d = video.getStartDate && video.getStartDate();
          return d && Number.isFinite(d.getTime()) ? d.getTime() + video.currentTime * 1000 : null;
        },
        impl: null,
      };
    }
  }
}
