/* vigilrtpstamp: timestamp RTP packets from their RTP timestamps, synchronously.
 *
 * Copyright (C) The Vigil authors
 *
 * This library is free software; you can redistribute it and/or modify it under the terms of
 * the GNU Lesser General Public License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY;
 * without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
 * See the GNU Lesser General Public License for more details.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * WHY
 * ---
 * rtspsrc over TCP timestamps only the first RTP packet of a stream and leaves the rest to the
 * rtpjitterbuffer inside rtpbin, which hands every packet to a thread of its own (one wake-up per
 * packet, per camera). Over TCP nothing is lost or reordered, so that buffering is wasted. This
 * element replaces the jitterbuffer through rtpbin's "request-jitterbuffer" signal: it runs in
 * the caller's streaming thread, keeps no queue and derives
 *
 *   PTS = base_pts + (ext_rtptime - base_ext_rtptime) * GST_SECOND / clock_rate
 *
 * DTS stays GST_CLOCK_TIME_NONE: RTP carries presentation time, and B-frames make it non-monotonic
 * (which is normal and never a resync).
 *
 * Buffer lists (vigilinterleave pushes one per socket read) are stamped in place and pushed on
 * as one list, with one object lock per list.
 *
 * USING IT
 * --------
 * Connect rtpbin's "request-jitterbuffer" (rtspsrc "new-manager" hands you the rtpbin) and return
 * a new vigilrtpstamp; over TCP only (UDP needs reordering, keep rtpjitterbuffer there).
 * Without the jitterbuffer's thread, rtspsrc's TCP task is the streaming thread down to the
 * first queue. If a sink sits directly behind it, stopping the whole pipeline can deadlock:
 * PLAYING->PAUSED puts the sink first, the task then blocks in the sink's preroll wait, and
 * rtspsrc waits for that task before it can pause. Seen here with fakesink sync=true every time
 * (and once with sync=false) on GStreamer 1.22; not with a queue in between, nor when rtspsrc is
 * set to NULL before the rest of the pipeline. Keep a queue before any sink, or stop the source
 * first.
 *
 * WHAT RTPBIN DOES WITH ITS JITTERBUFFER (gst-plugins-good gst/rtpmanager/gstrtpbin.c, read at
 * GStreamer/gstreamer commit 02115a5efc697845b6328d26a50b756dcf9b4549, a 1.22-era tree: it has the
 * 1.22 properties min-ts-offset / add-reference-timestamp-meta and nothing newer)
 *
 *   create_stream():
 *     - request-pt-map: connected only if g_signal_lookup finds it.        -> we provide it
 *     - on-npt-stop: connected only if g_signal_lookup finds it.           -> not provided
 *     - g_object_set (jb, "latency", guint ms)  UNGUARDED                   -> stored, ignored
 *     - drop-on-latency, do-lost, mode, do-retransmission, max-rtcp-rtp-time-diff,
 *       max-dropout-time, max-misorder-time, rfc7273-sync, add-reference-timestamp-meta,
 *       max-ts-offset-adjustment, sync-interval: each set only if g_object_class_find_property
 *       finds it.                                                          -> not provided
 *     - g_object_set_data "GstRTPBin.session" / "GstRTPBin.stream" on the element (qdata only).
 *     - emits its own "new-jitterbuffer" (jb, session, ssrc).
 *     - links jb "src" -> rtpptdemux "sink" (GST_PAD_LINK_CHECK_NOTHING).
 *     - if rtpbin is buffering: "set-active" (gboolean, guint64) -> guint64, emitted only if
 *       g_signal_lookup finds it.                                           -> provided, no-op
 *   new_ssrc_pad_found():
 *     - links rtpssrcdemux "src_<ssrc>" -> jb static pad "sink".           -> we have it
 *     - gst_element_request_pad_simple (jb, "sink_rtcp"); links RTCP only if a pad came back.
 *       We have no such template: NULL, silently; rtpssrcdemux's rtcp_src_<ssrc> stays unlinked.
 *     - handle-sync (GstStructure*): connected only if g_signal_lookup finds it (RTCP SR lip
 *       sync).                                                              -> not provided
 *     - with ignore-pt=TRUE, exposes jb's static "src" pad directly.
 *   gst_rtp_bin_clear_pt_map(): "clear-pt-map" emitted only if g_signal_lookup finds it.
 *                                                                          -> provided
 *   stream_set_ts_offset(): "ts-offset" get/set only if g_object_class_find_property finds it.
 *   gst_rtp_bin_send_sync_event(): pushes a GstRTCPSRReceived custom event out of jb's "src"
 *     pad; only reached from handle-sync, which we do not have.
 *   gst_rtp_bin_propagate_property_to_jitterbuffer() (setting latency, drop-on-latency, do-lost,
 *     buffer-mode->"mode", do-retransmission, max-rtcp-rtp-time-diff, max-dropout-time,
 *     max-misorder-time, rfc7273-sync, add-reference-timestamp-meta, max-ts-offset-adjustment on
 *     rtpbin after streams exist): guarded; a missing property gives a GST_WARNING (debug log,
 *     not a GLib warning). "latency" exists here so the common case stays silent.
 *   gst_rtp_bin_handle_message(), BUFFERING from a stream's jb: for every stream it emits
 *     "set-active" (guarded) and g_object_get (jb, "percent", gint) UNGUARDED when pausing.
 *     We never post BUFFERING, but "percent" (always 100) is provided so a mix with real
 *     jitterbuffers in one rtpbin cannot hit a missing property.
 *   free_stream(): locked state, set to NULL, disconnects the handlers it connected, removes it.
 *   No queries are sent to the jitterbuffer by rtpbin itself; LATENCY reaches it from downstream.
 *   rtspsrc (1.22) only talks to rtpbin: properties (latency, drop-on-latency, buffer-mode, ...),
 *   "clear-pt-map", "reset-sync", "get-internal-session", and it connects to rtpbin's
 *   "on-npt-stop" / "request-pt-map"; it never addresses the jitterbuffer element itself.
 *   Checked at run time too: a whole RTSP-over-TCP session with this element prints no GLib or
 *   GStreamer warning at GST_DEBUG=2 (tests/media/test_rtpstamp.py).
 */

#include <gst/gst.h>
#include <gst/rtp/gstrtpbuffer.h>

GST_DEBUG_CATEGORY_STATIC (vigil_rtp_stamp_debug);
#define GST_CAT_DEFAULT vigil_rtp_stamp_debug

#define VIGIL_TYPE_RTP_STAMP (vigil_rtp_stamp_get_type ())
G_DECLARE_FINAL_TYPE (VigilRtpStamp, vigil_rtp_stamp, VIGIL, RTP_STAMP, GstElement)
GST_ELEMENT_REGISTER_DECLARE (vigilrtpstamp);

#define DEFAULT_MAX_BACKWARD  (1 * GST_SECOND)
#define DEFAULT_MAX_FORWARD   (10 * GST_SECOND)
#define DEFAULT_LATENCY_MS    200
/* Step used to keep PTS moving forward after a resync when there is no clock and no earlier
 * inter-packet step to copy. */
#define FALLBACK_STEP         GST_MSECOND

enum
{
  PROP_0,
  PROP_MAX_BACKWARD,
  PROP_MAX_FORWARD,
  PROP_LATENCY,
  PROP_PACKETS,
  PROP_RESYNCS,
  PROP_LAST_PTS,
  PROP_CLOCK_RATE,
  PROP_PERCENT,
};

enum
{
  SIGNAL_REQUEST_PT_MAP,
  SIGNAL_CLEAR_PT_MAP,
  SIGNAL_SET_ACTIVE,
  LAST_SIGNAL
};

static guint vigil_rtp_stamp_signals[LAST_SIGNAL];

struct _VigilRtpStamp
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* Streaming-thread state: touched only from the sink pad's streaming thread (chain and
   * serialized events, which hold the stream lock) and from state changes while no data flows. */
  gint clock_rate;              /* in use, -1 when unknown */
  gint clock_rate_pt;           /* payload type clock_rate belongs to, -1 when from caps only */
  gint caps_clock_rate;         /* from the sink caps, -1 when absent */
  gint caps_pt;                 /* "payload" from the sink caps, -1 when absent */
  gboolean have_base;
  gboolean need_rebase;         /* continue the timeline on the next packet (clock-rate change) */
  guint64 ext_rtptime;          /* unwrapping state for gst_rtp_buffer_ext_timestamp */
  guint64 base_ext_rtptime;
  GstClockTime base_pts;
  guint64 prev_ext_rtptime;     /* previous packet, for jump detection */
  GstClockTime max_pts;         /* highest PTS sent: B-frames go below it */
  GstClockTime step;            /* last forward step between two RTP timestamps */
  gchar *stream_id;
  /* copies of the properties, refreshed under the object lock after every packet */
  GstClockTime max_backward_cached;
  GstClockTime max_forward_cached;

  /* Shared with other threads: under the object lock. */
  GstClockTime max_backward;
  GstClockTime max_forward;
  guint latency_ms;
  guint64 packets;
  guint resyncs;
  GstClockTime last_pts;
  gint clock_rate_published;
  gboolean pt_map_cleared;
};

G_DEFINE_TYPE (VigilRtpStamp, vigil_rtp_stamp, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (vigilrtpstamp, "vigilrtpstamp", GST_RANK_NONE,
    VIGIL_TYPE_RTP_STAMP, GST_DEBUG_CATEGORY_INIT (vigil_rtp_stamp_debug, "vigilrtpstamp", 0,
        "Vigil RTP timestamper"));

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("application/x-rtp"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("application/x-rtp"));

static void
reset_timeline (VigilRtpStamp * self)
{
  self->have_base = FALSE;
  self->need_rebase = FALSE;
  self->ext_rtptime = GST_CLOCK_TIME_NONE;
  self->base_ext_rtptime = 0;
  self->base_pts = GST_CLOCK_TIME_NONE;
  self->prev_ext_rtptime = 0;
  self->max_pts = GST_CLOCK_TIME_NONE;
  self->step = 0;
}

static void
reset_all (VigilRtpStamp * self)
{
  reset_timeline (self);
  self->clock_rate = -1;
  self->clock_rate_pt = -1;
  self->caps_clock_rate = -1;
  self->caps_pt = -1;
  g_clear_pointer (&self->stream_id, g_free);
  GST_OBJECT_LOCK (self);
  self->clock_rate_published = -1;
  self->last_pts = GST_CLOCK_TIME_NONE;
  self->pt_map_cleared = FALSE;
  self->max_backward_cached = self->max_backward;
  self->max_forward_cached = self->max_forward;
  GST_OBJECT_UNLOCK (self);
}

/* Running time now, or GST_CLOCK_TIME_NONE without a clock. Called on the first packet and on
 * resyncs only. */
static GstClockTime
current_running_time (VigilRtpStamp * self)
{
  GstClock *clock;
  GstClockTime base_time, now;

  GST_OBJECT_LOCK (self);
  clock = GST_ELEMENT_CLOCK (self);
  if (clock == NULL) {
    GST_OBJECT_UNLOCK (self);
    return GST_CLOCK_TIME_NONE;
  }
  gst_object_ref (clock);
  base_time = GST_ELEMENT_CAST (self)->base_time;
  GST_OBJECT_UNLOCK (self);

  now = gst_clock_get_time (clock);
  gst_object_unref (clock);
  if (!GST_CLOCK_TIME_IS_VALID (now) || !GST_CLOCK_TIME_IS_VALID (base_time))
    return GST_CLOCK_TIME_NONE;
  return now > base_time ? now - base_time : 0;
}

static gint
clock_rate_from_caps (const GstCaps * caps, gint * pt)
{
  const GstStructure *s;
  gint rate = -1;

  if (pt != NULL)
    *pt = -1;
  if (caps == NULL || gst_caps_get_size (caps) == 0)
    return -1;
  s = gst_caps_get_structure (caps, 0);
  if (!gst_structure_get_int (s, "clock-rate", &rate) || rate <= 0)
    rate = -1;
  if (pt != NULL && !gst_structure_get_int (s, "payload", pt))
    *pt = -1;
  return rate;
}

/* Ask whoever connected to "request-pt-map" (rtpbin) for the caps of @pt. */
static gint
clock_rate_from_pt_map (VigilRtpStamp * self, guint pt)
{
  GstCaps *caps = NULL;
  gint rate;

  g_signal_emit (self, vigil_rtp_stamp_signals[SIGNAL_REQUEST_PT_MAP], 0, pt, &caps);
  rate = clock_rate_from_caps (caps, NULL);
  GST_DEBUG_OBJECT (self, "pt map for %u: %" GST_PTR_FORMAT " -> clock-rate %d", pt, caps,
      rate);
  if (caps != NULL)
    gst_caps_unref (caps);
  return rate;
}

/* Find the clock-rate for @pt, on the first packet or when the payload type changed. */
static gboolean
update_clock_rate (VigilRtpStamp * self, guint pt)
{
  gint rate = -1;

  if (self->caps_clock_rate > 0 && (self->caps_pt < 0 || self->caps_pt == (gint) pt))
    rate = self->caps_clock_rate;
  if (rate <= 0)
    rate = clock_rate_from_pt_map (self, pt);
  if (rate <= 0)
    rate = self->caps_clock_rate;
  if (rate <= 0)
    return FALSE;

  if (self->clock_rate > 0 && rate != self->clock_rate && self->have_base) {
    GST_INFO_OBJECT (self, "clock-rate %d -> %d, re-basing", self->clock_rate, rate);
    self->need_rebase = TRUE;
  }
  self->clock_rate = rate;
  self->clock_rate_pt = (gint) pt;
  return TRUE;
}

static GstClockTime
rtp_delta_to_time (guint64 delta, gint clock_rate)
{
  return gst_util_uint64_scale_int (delta, GST_SECOND, clock_rate);
}

static void
post_resync (VigilRtpStamp * self, guint32 old_rtptime, guint32 new_rtptime,
    GstClockTime old_pts, GstClockTime new_pts)
{
  GstStructure *s;

  s = gst_structure_new ("vigil-rtp-resync",
      "old-rtptime", G_TYPE_UINT, old_rtptime,
      "new-rtptime", G_TYPE_UINT, new_rtptime,
      "old-pts", G_TYPE_UINT64, old_pts, "new-pts", G_TYPE_UINT64, new_pts, NULL);
  gst_element_post_message (GST_ELEMENT_CAST (self),
      gst_message_new_element (GST_OBJECT_CAST (self), s));
}

/* Where a re-based timeline continues: now, but never at or before what was already sent. */
static GstClockTime
continuation_pts (VigilRtpStamp * self)
{
  GstClockTime now = current_running_time (self);
  GstClockTime next = GST_CLOCK_TIME_NONE;

  if (GST_CLOCK_TIME_IS_VALID (self->max_pts))
    next = self->max_pts + (self->step > 0 ? self->step : FALLBACK_STEP);
  if (!GST_CLOCK_TIME_IS_VALID (now))
    return GST_CLOCK_TIME_IS_VALID (next) ? next : 0;
  if (GST_CLOCK_TIME_IS_VALID (next) && next > now)
    return next;
  return now;
}

/* What a chain call sends to the properties, once per buffer or buffer list. */
typedef struct
{
  guint packets;
  GstClockTime last_pts;
} StampTally;

/* Set the PTS of @buf (writable) from its RTP timestamp. GST_FLOW_CUSTOM_SUCCESS: not RTP, drop
 * it; GST_FLOW_ERROR: no clock-rate (error posted). */
static GstFlowReturn
vigil_rtp_stamp_stamp (VigilRtpStamp * self, GstBuffer * buf, StampTally * tally)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  guint32 rtptime;
  guint pt;
  guint64 ext;
  GstClockTime pts;
  gboolean discont = FALSE, resynced = FALSE;
  guint32 old_rtptime = 0;
  GstClockTime old_pts = GST_CLOCK_TIME_NONE;

  if (G_UNLIKELY (!gst_rtp_buffer_map (buf, GST_MAP_READ, &rtp))) {
    GST_DEBUG_OBJECT (self, "dropping a buffer that is not RTP");
    return GST_FLOW_CUSTOM_SUCCESS;
  }
  rtptime = gst_rtp_buffer_get_timestamp (&rtp);
  pt = gst_rtp_buffer_get_payload_type (&rtp);
  gst_rtp_buffer_unmap (&rtp);

  if (G_UNLIKELY (self->clock_rate <= 0 || (gint) pt != self->clock_rate_pt)) {
    if (!update_clock_rate (self, pt)) {
      GstCaps *caps = gst_pad_get_current_caps (self->sinkpad);

      GST_ELEMENT_ERROR (self, STREAM, FORMAT,
          ("No RTP clock-rate for payload type %u.", pt),
          ("The sink caps have no clock-rate and nobody answered request-pt-map "
              "(caps: %" GST_PTR_FORMAT ").", caps));
      if (caps != NULL)
        gst_caps_unref (caps);
      return GST_FLOW_ERROR;
    }
  }

  ext = gst_rtp_buffer_ext_timestamp (&self->ext_rtptime, rtptime);

  if (G_UNLIKELY (!self->have_base)) {
    GstClockTime base = GST_BUFFER_PTS (buf);

    if (!GST_CLOCK_TIME_IS_VALID (base))
      base = GST_BUFFER_DTS (buf);
    if (!GST_CLOCK_TIME_IS_VALID (base))
      base = current_running_time (self);
    if (!GST_CLOCK_TIME_IS_VALID (base))
      base = 0;
    self->base_pts = base;
    self->base_ext_rtptime = ext;
    self->have_base = TRUE;
    GST_INFO_OBJECT (self, "first packet: rtptime %u at %" GST_TIME_FORMAT
        " (buffer pts %" GST_TIME_FORMAT " dts %" GST_TIME_FORMAT "), clock-rate %d",
        rtptime, GST_TIME_ARGS (base), GST_TIME_ARGS (GST_BUFFER_PTS (buf)),
        GST_TIME_ARGS (GST_BUFFER_DTS (buf)), self->clock_rate);
  } else {
    gboolean jump;
    GstClockTime distance;

    if (ext >= self->prev_ext_rtptime) {
      distance = rtp_delta_to_time (ext - self->prev_ext_rtptime, self->clock_rate);
      jump = distance > self->max_forward_cached;
      if (!jump && distance > 0)
        self->step = distance;
    } else {
      distance = rtp_delta_to_time (self->prev_ext_rtptime - ext, self->clock_rate);
      jump = distance > self->max_backward_cached;
    }
    if (G_UNLIKELY (jump || self->need_rebase)) {
      old_rtptime = (guint32) self->prev_ext_rtptime;
      old_pts = self->max_pts;
      self->base_pts = continuation_pts (self);
      self->base_ext_rtptime = ext;
      self->need_rebase = FALSE;
      discont = TRUE;
      resynced = jump;
      if (jump)
        GST_WARNING_OBJECT (self, "RTP clock jumped %s by %" GST_TIME_FORMAT
            " (rtptime %u -> %u): re-based at %" GST_TIME_FORMAT,
            ext >= self->prev_ext_rtptime ? "forward" : "backward",
            GST_TIME_ARGS (distance), old_rtptime, rtptime,
            GST_TIME_ARGS (self->base_pts));
    }
  }
  self->prev_ext_rtptime = ext;

  if (ext >= self->base_ext_rtptime) {
    pts = self->base_pts + rtp_delta_to_time (ext - self->base_ext_rtptime, self->clock_rate);
  } else {
    GstClockTime back =
        rtp_delta_to_time (self->base_ext_rtptime - ext, self->clock_rate);
    pts = self->base_pts > back ? self->base_pts - back : 0;
  }
  if (!GST_CLOCK_TIME_IS_VALID (self->max_pts) || pts > self->max_pts)
    self->max_pts = pts;

  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_NONE;
  if (G_UNLIKELY (discont))
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);

  GST_LOG_OBJECT (self, "rtptime %u ext %" G_GUINT64_FORMAT " -> pts %" GST_TIME_FORMAT,
      rtptime, ext, GST_TIME_ARGS (pts));

  tally->packets++;
  tally->last_pts = pts;
  if (G_UNLIKELY (resynced)) {
    /* counted before the message is posted, so a handler reading "resyncs" sees it */
    GST_OBJECT_LOCK (self);
    self->resyncs++;
    GST_OBJECT_UNLOCK (self);
    post_resync (self, old_rtptime, rtptime, old_pts, pts);
  }
  return GST_FLOW_OK;
}

/* Publish a chain call's packets and pick up property changes: one lock per buffer or list. */
static void
vigil_rtp_stamp_publish (VigilRtpStamp * self, const StampTally * tally)
{
  GST_OBJECT_LOCK (self);
  self->packets += tally->packets;
  if (tally->packets > 0) {
    self->last_pts = tally->last_pts;
    self->clock_rate_published = self->clock_rate;
  }
  self->max_backward_cached = self->max_backward;
  self->max_forward_cached = self->max_forward;
  if (G_UNLIKELY (self->pt_map_cleared)) {
    /* picked up here so the streaming thread alone writes its state */
    self->pt_map_cleared = FALSE;
    self->clock_rate_pt = -1;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstFlowReturn
vigil_rtp_stamp_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (parent);
  StampTally tally = { 0, GST_CLOCK_TIME_NONE };
  GstFlowReturn ret;

  (void) pad;

  buf = gst_buffer_make_writable (buf);
  ret = vigil_rtp_stamp_stamp (self, buf, &tally);
  vigil_rtp_stamp_publish (self, &tally);
  if (G_UNLIKELY (ret != GST_FLOW_OK)) {
    gst_buffer_unref (buf);
    return ret == GST_FLOW_CUSTOM_SUCCESS ? GST_FLOW_OK : ret;
  }
  return gst_pad_push (self->srcpad, buf);
}

/* Lists (vigilinterleave pushes one per socket read) are stamped in place and pushed on as one
 * list: without this, GStreamer would call chain and push once per packet. */
static GstFlowReturn
vigil_rtp_stamp_chain_list (GstPad * pad, GstObject * parent, GstBufferList * list)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (parent);
  StampTally tally = { 0, GST_CLOCK_TIME_NONE };
  GstFlowReturn ret = GST_FLOW_OK;
  guint i = 0;

  (void) pad;

  list = gst_buffer_list_make_writable (list);
  while (i < gst_buffer_list_length (list)) {
    ret = vigil_rtp_stamp_stamp (self, gst_buffer_list_get_writable (list, i), &tally);
    if (G_UNLIKELY (ret == GST_FLOW_CUSTOM_SUCCESS)) {
      gst_buffer_list_remove (list, i, 1);
      ret = GST_FLOW_OK;
      continue;
    }
    if (G_UNLIKELY (ret != GST_FLOW_OK))
      break;
    i++;
  }
  vigil_rtp_stamp_publish (self, &tally);
  if (G_UNLIKELY (ret != GST_FLOW_OK || gst_buffer_list_length (list) == 0)) {
    gst_buffer_list_unref (list);
    return ret;
  }
  return gst_pad_push_list (self->srcpad, list);
}

static gboolean
vigil_rtp_stamp_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
      GST_DEBUG_OBJECT (self, "flush-stop: new timeline on the next packet");
      reset_timeline (self);
      break;
    case GST_EVENT_STREAM_START:{
      const gchar *stream_id = NULL;

      gst_event_parse_stream_start (event, &stream_id);
      if (g_strcmp0 (stream_id, self->stream_id) != 0) {
        GST_DEBUG_OBJECT (self, "new stream %s: new timeline", GST_STR_NULL (stream_id));
        g_free (self->stream_id);
        self->stream_id = g_strdup (stream_id);
        reset_timeline (self);
      }
      break;
    }
    case GST_EVENT_CAPS:{
      GstCaps *caps;
      gint pt;

      gst_event_parse_caps (event, &caps);
      self->caps_clock_rate = clock_rate_from_caps (caps, &pt);
      self->caps_pt = pt;
      /* look the rate up again on the next packet; a different rate re-bases */
      self->clock_rate_pt = -1;
      GST_DEBUG_OBJECT (self, "caps clock-rate %d, payload %d", self->caps_clock_rate, pt);
      break;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
vigil_rtp_stamp_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:{
      gboolean live;
      GstClockTime min_latency, max_latency;

      /* Timestamps come from the running time at arrival, so downstream must treat this as
       * live; we hold nothing back, so we add no latency of our own. */
      if (gst_pad_peer_query (self->sinkpad, query)) {
        gst_query_parse_latency (query, &live, &min_latency, &max_latency);
        gst_query_set_latency (query, TRUE, min_latency, max_latency);
      } else {
        gst_query_set_latency (query, TRUE, 0, GST_CLOCK_TIME_NONE);
      }
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

static GstStateChangeReturn
vigil_rtp_stamp_change_state (GstElement * element, GstStateChange transition)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (element);
  GstStateChangeReturn ret;

  /* Reset on the way up only, so last-pts and clock-rate still describe the last run after a
   * stop; packets and resyncs are counters and never go back. */
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
    reset_all (self);

  ret = GST_ELEMENT_CLASS (vigil_rtp_stamp_parent_class)->change_state (element, transition);
  return ret;
}

/* Action signal "clear-pt-map": forget the clock-rate; the next packet looks it up again. */
static void
vigil_rtp_stamp_clear_pt_map (VigilRtpStamp * self)
{
  GST_DEBUG_OBJECT (self, "clear-pt-map");
  GST_OBJECT_LOCK (self);
  self->pt_map_cleared = TRUE;
  GST_OBJECT_UNLOCK (self);
}

/* Action signal "set-active": rtpbin's buffering control. We never hold packets, so there is
 * nothing to pause; answer with the last PTS sent, as rtpjitterbuffer does. */
static guint64
vigil_rtp_stamp_set_active (VigilRtpStamp * self, gboolean active, guint64 offset)
{
  GstClockTime last;

  GST_OBJECT_LOCK (self);
  last = self->last_pts;
  GST_OBJECT_UNLOCK (self);
  GST_DEBUG_OBJECT (self, "set-active %d offset %" GST_TIME_FORMAT " (ignored)", active,
      GST_TIME_ARGS (offset));
  return last;
}

static void
vigil_rtp_stamp_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MAX_BACKWARD:
      self->max_backward = g_value_get_uint64 (value);
      break;
    case PROP_MAX_FORWARD:
      self->max_forward = g_value_get_uint64 (value);
      break;
    case PROP_LATENCY:
      self->latency_ms = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
vigil_rtp_stamp_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MAX_BACKWARD:
      g_value_set_uint64 (value, self->max_backward);
      break;
    case PROP_MAX_FORWARD:
      g_value_set_uint64 (value, self->max_forward);
      break;
    case PROP_LATENCY:
      g_value_set_uint (value, self->latency_ms);
      break;
    case PROP_PACKETS:
      g_value_set_uint64 (value, self->packets);
      break;
    case PROP_RESYNCS:
      g_value_set_uint (value, self->resyncs);
      break;
    case PROP_LAST_PTS:
      g_value_set_uint64 (value, self->last_pts);
      break;
    case PROP_CLOCK_RATE:
      g_value_set_int (value, self->clock_rate_published);
      break;
    case PROP_PERCENT:
      g_value_set_int (value, 100);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
vigil_rtp_stamp_finalize (GObject * object)
{
  VigilRtpStamp *self = VIGIL_RTP_STAMP (object);

  g_free (self->stream_id);
  G_OBJECT_CLASS (vigil_rtp_stamp_parent_class)->finalize (object);
}

static void
vigil_rtp_stamp_class_init (VigilRtpStampClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = vigil_rtp_stamp_set_property;
  gobject_class->get_property = vigil_rtp_stamp_get_property;
  gobject_class->finalize = vigil_rtp_stamp_finalize;

  g_object_class_install_property (gobject_class, PROP_MAX_BACKWARD,
      g_param_spec_uint64 ("max-backward", "Max backward step",
          "A backward RTP time step larger than this (ns) means the sender restarted its "
          "clock: re-base the timeline", 0, G_MAXUINT64, DEFAULT_MAX_BACKWARD, rw));
  g_object_class_install_property (gobject_class, PROP_MAX_FORWARD,
      g_param_spec_uint64 ("max-forward", "Max forward jump",
          "A forward RTP time jump larger than this (ns) means the sender restarted its "
          "clock: re-base the timeline", 0, G_MAXUINT64, DEFAULT_MAX_FORWARD, rw));
  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint ("latency", "Latency (ms)",
          "Accepted for rtpbin's sake and ignored: nothing is buffered", 0, G_MAXUINT,
          DEFAULT_LATENCY_MS, rw));
  g_object_class_install_property (gobject_class, PROP_PACKETS,
      g_param_spec_uint64 ("packets", "Packets", "RTP packets timestamped", 0,
          G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_RESYNCS,
      g_param_spec_uint ("resyncs", "Resyncs",
          "Times the timeline was re-based after an RTP clock jump", 0, G_MAXUINT, 0, ro));
  g_object_class_install_property (gobject_class, PROP_LAST_PTS,
      g_param_spec_uint64 ("last-pts", "Last PTS", "PTS of the last packet sent", 0,
          G_MAXUINT64, GST_CLOCK_TIME_NONE, ro));
  g_object_class_install_property (gobject_class, PROP_CLOCK_RATE,
      g_param_spec_int ("clock-rate", "Clock rate", "RTP clock-rate in use (-1 unknown)",
          -1, G_MAXINT, -1, ro));
  g_object_class_install_property (gobject_class, PROP_PERCENT,
      g_param_spec_int ("percent", "Buffer fill percent",
          "Always 100: nothing is buffered (read by rtpbin's buffering logic)", 0, 100,
          100, ro));

  /* Same signature as rtpjitterbuffer's, so rtpbin connects its pt map to it. */
  vigil_rtp_stamp_signals[SIGNAL_REQUEST_PT_MAP] =
      g_signal_new ("request-pt-map", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, GST_TYPE_CAPS, 1, G_TYPE_UINT);
  vigil_rtp_stamp_signals[SIGNAL_CLEAR_PT_MAP] =
      g_signal_new_class_handler ("clear-pt-map", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION, G_CALLBACK (vigil_rtp_stamp_clear_pt_map),
      NULL, NULL, NULL, G_TYPE_NONE, 0, G_TYPE_NONE);
  vigil_rtp_stamp_signals[SIGNAL_SET_ACTIVE] =
      g_signal_new_class_handler ("set-active", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION, G_CALLBACK (vigil_rtp_stamp_set_active),
      NULL, NULL, NULL, G_TYPE_UINT64, 2, G_TYPE_BOOLEAN, G_TYPE_UINT64);

  element_class->change_state = GST_DEBUG_FUNCPTR (vigil_rtp_stamp_change_state);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Vigil RTP timestamper",
      "Filter/Network/RTP",
      "Sets PTS from RTP timestamps in the streaming thread: an rtpjitterbuffer "
      "replacement for in-order transports (RTSP over TCP)", "Vigil");
}

static void
vigil_rtp_stamp_init (VigilRtpStamp * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (vigil_rtp_stamp_chain));
  gst_pad_set_chain_list_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (vigil_rtp_stamp_chain_list));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (vigil_rtp_stamp_sink_event));
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (vigil_rtp_stamp_src_query));
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  GST_PAD_SET_PROXY_ALLOCATION (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->max_backward = DEFAULT_MAX_BACKWARD;
  self->max_forward = DEFAULT_MAX_FORWARD;
  self->latency_ms = DEFAULT_LATENCY_MS;
  self->packets = 0;
  self->resyncs = 0;
  self->stream_id = NULL;
  reset_all (self);
}

