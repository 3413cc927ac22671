/* The "vigil" GStreamer plugin: registers Vigil's native elements.
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
 * (LGPL so the plugin's licence string is one GStreamer's loader accepts; see GST_PLUGIN_DEFINE.)
 *
 * Every *.c file of this directory is compiled into one library (vigil.media.native.build());
 * each element file defines its gst_element_register_<name>() with GST_ELEMENT_REGISTER_DEFINE,
 * declared here, so no header is needed (package data ships *.c only).
 */

#include <gst/gst.h>

#define PACKAGE "vigil"           /* GstPluginDesc.source, read by GST_PLUGIN_DEFINE */
#define VIGIL_PACKAGE "vigil"
#define VIGIL_VERSION "0.1.0"
#define VIGIL_ORIGIN "Vigil"

GST_ELEMENT_REGISTER_DECLARE (vigilrtpstamp);
GST_ELEMENT_REGISTER_DECLARE (vigilinterleave);

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean stamp = GST_ELEMENT_REGISTER (vigilrtpstamp, plugin);
  gboolean interleave = GST_ELEMENT_REGISTER (vigilinterleave, plugin);

  /* FALSE would unload the plugin: one element failing must not take the other with it
   * (register() in __init__.py says which is missing) */
  return stamp || interleave;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, vigil,
    "Vigil's native helpers: vigilrtpstamp, vigilinterleave", plugin_init, VIGIL_VERSION,
    "LGPL", VIGIL_PACKAGE, VIGIL_ORIGIN)
