"""The tag-profiling family (DESIGN.md section 8): user fields -> user embedding -> the user's
preference over a tag vocabulary, learnt from clicked and un-clicked tagged articles (UTPM,
Yan et al., CIKM 2020, and its YouTube-DNN baseline)."""
